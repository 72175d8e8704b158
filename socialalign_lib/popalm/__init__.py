"""PopALM (Yu, Li, Xu, LREC-COLING 2024): popularity-aligned trendy response generation.

Given an event post, generate the replies that will be top-liked. Three steps, one module each:

    events = data.events_from_world(world)                  # posts + replies + likes, split by event
    sft = sft.train_sft(base, tok, data.sft_records(train, top_k=3))           # 1. SFT on top-liked replies
    rm = reward.train_reward_model(reward.load_reward_model(path, tok), tok,
                                   data.build_pairs(train, min_margin=0.5))    # 2. reward model on like pairs
    run = rl.run_ppo(sft.model, tok, train, rl.PopalmReward(scorer), sampler)  # 3. PPO (+ curriculum sampler)

Files: ``data.py`` (events, trendy targets, pairs, loaders), ``reward.py`` (reward model, scorer, pairwise
accuracy), ``ppo.py`` (PPO for causal LMs with LoRA: rollouts, value head, GAE, clipped losses, KL control),
``curriculum.py`` (event difficulty, easy → hard stages, samplers), ``sft.py``, ``rl.py`` (the PopALM PPO loop),
``evaluate.py`` (held-out metrics and figures).
"""
