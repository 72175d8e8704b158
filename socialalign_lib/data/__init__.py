"""The data stage: one data model, and everything that reads, writes, checks and cleans it.

=================  ============================================================================================
``schema``         the record dataclasses (Topic, Post, Persona, User, Response, Case) — the one source of their
                   fields; validation specs and ``datasets.Features`` are derived from it
``errors``         :class:`DataFormatError` (file, line, field) and :class:`OutputLockedError`
``encoding``       THE encoding policy: strict UTF-8 / GB18030 decoding, errors that name line and byte
``write``          atomic whole-file writers (JSON Lines, JSON, text, Parquet) in one canonical JSON form
``append``         resumable JSON Lines: one writer (a lock), durable batches, torn-tail repair
``read``           JSON Lines / JSON / text / CSV / Parquet readers with exact errors
``checks``         required-field and type checks of plain records
``validate``       schema validation (``validate_*``, ``load_*``)
``hf``             schema records as ``datasets.Dataset`` with explicit features
``text``           Weibo text rules: THE hashtag pattern, emoji, HTML, width folding, strip list (``clean_text``)
``history``        SocialAlign's history-post filter
``persona_text``   THE persona parser (five numbered items → :class:`Persona`)
``loaders``        real formats → schema: ``socialalign``, ``weibo``, ``lamp``, ``smp``, ``popalm``
=================  ============================================================================================

Nothing is imported here, so ``import socialalign_lib.data.schema`` stays as light as the schema itself.
"""
