"""The build stage: real or simulated cases → SocialAlign instruction records and a ``DatasetDict``.

* :mod:`.retrieval` — BM25 over one user's history, query = the news (the posts a prompt shows).
* :mod:`.persona` — the five-item persona: prompt, backends, statistical extractor, cached extractor, recovery.
* :mod:`.records` — the prompt template with character spans, the chat/token form with token spans, the dataset.
* :mod:`.pipeline` — the course's data path in one call (world → personas → records → dataset).

Below the models, training and generation in the pipeline: nothing here imports them, nor the world simulator,
at module level (the one world import is :func:`.pipeline.course_data` making the course's world from its size and
seed). Nothing is imported eagerly here, so ``import socialalign_lib.build.retrieval`` stays light.
"""
