"""Crowd-level (macro) evaluation: does the crowd a model generates for a topic *feel* like the real one?

The recipe (docs/methods.md#crowd-level-evaluation; the official code publishes none, so these are our choices),
one module per step:

1. :mod:`.distributions` — ``label_replies``: label every generated reply *and* every real reply with the **same**
   sentiment labeller (its mistakes then hit both crowds alike instead of being counted as model error);
   ``crowd_frames``: one row per reply, ``(topic_id, sentiment)``, for the real and the generated crowd;
   ``crowd_counts`` / ``crowd_distributions``: topic × label frames.
2. :mod:`.divergences` — KL(real ‖ pred) (smoothed, ``eps``), JS (base 2) and TV; per topic with percentile
   bootstrap CIs (``compare_crowds``, ``compare_to_truth``) and the one number per method for the results table
   (``mean_divergences``: the mean over topics). One bootstrap for all of them, ``multinomial_replicates``: each
   topic's users resampled, drawn as multinomial counts.
3. :mod:`.baselines` — crowds no language model wrote: ``category_prior`` ("people answer food news like they
   answered food news before"), on the embedded world ``oracle_crowd`` (labels drawn from the true ``p(s|u,t)`` of
   the same users: the best any model can do, whose JS to the real crowd is pure sampling noise) and
   ``true_crowd`` (the world's expected crowd over the same users); the non-LLM rows of the results table.
4. :mod:`.comparisons` — "is A better than B?": paired differences on the same units (``paired_best``,
   ``compare``) and on resampled crowds (``js_difference``), each with a sentence that says so only when the
   interval excludes 0.
5. :mod:`.plots` — per-topic stacked bars, per-topic divergence with CIs, predicted vs real share of a sentiment.
6. :mod:`.real` — real crowds against each other (a hashtag's crowd day by day) from a real export.

Import from the submodules (``from socialalign_lib.crowd.divergences import compare_crowds``). This file imports
none of them, so a light user of the divergences (the world's headroom analysis) does not load matplotlib.
"""
