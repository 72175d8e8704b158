"""Every figure the course writes goes through ``plots.save_figure``, which refuses text no font can draw (empty
boxes: emoji in the CJK font, U+FFFD from broken bytes); the figure functions draw what they claim on tiny data."""

from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from socialalign_lib.paths import ROOT
from socialalign_lib.plots import MissingGlyphError, figure_text, missing_glyphs, save_figure


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(fig) -> list[str]:
    from matplotlib.text import Text

    fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]


# ---- the glyph check ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["好😭！", "一半\ufffd字"])
def test_save_figure_refuses_text_no_font_can_draw_and_writes_nothing(tmp_path, bad):
    fig, ax = plt.subplots()
    ax.set_title(bad)
    with pytest.raises(MissingGlyphError) as err:
        save_figure(fig, "broken", tmp_path)
    message = str(err.value)
    missing = next(ch for ch in bad if ch in "😭\ufffd")
    assert "'broken.png'" in message and f"U+{ord(missing):04X}" in message and repr(bad) in message
    assert not (tmp_path / "broken.png").exists()


def test_a_figure_drawn_before_is_still_checked(tmp_path):
    """matplotlib warns only the first time a font meets a missing character: a figure drawn by tight_layout (or
    shown by a notebook) before it is saved must fail all the same."""
    fig, ax = plt.subplots()
    ax.set_xticks([0, 1], ["ok", "👀"])
    fig.tight_layout()
    fig.canvas.draw()
    with pytest.raises(MissingGlyphError, match="U\\+1F440"):
        save_figure(fig, "drawn", tmp_path)


def test_a_figure_pyplot_never_saw_is_checked_too(tmp_path):
    """The explorers draw on bare ``Figure`` objects, whose canvas draws nothing: the check must still lay out
    their tick labels (here categorical ones, formatted at draw time) and refuse them."""
    from matplotlib.figure import Figure

    fig = Figure()
    fig.subplots().bar(["ok", "👀"], [1, 2])
    with pytest.raises(MissingGlyphError, match="U\\+1F440"):
        save_figure(fig, "bare", tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file left


def test_tick_labels_legends_and_table_cells_are_checked():
    fig, (a, b) = plt.subplots(1, 2)
    a.bar(["x"], [1], label="图例🎉")
    a.legend()
    b.table(cellText=[["格🍉"]], loc="center")
    found = {ch for chars in missing_glyphs(fig).values() for ch in chars}
    assert found == {"🎉", "🍉"}


def test_other_warnings_pass_through_and_mathtext_is_not_flagged(tmp_path):
    fig, ax = plt.subplots()
    ax.set_title(r"$\mu$ 与 $\sigma$")
    assert missing_glyphs(fig) == {}
    assert save_figure(fig, "math", tmp_path).exists()


# ---- emoji and broken bytes become drawable text ---------------------------------------------------------------


def test_every_emoji_of_the_world_becomes_a_drawable_weibo_code(tmp_path):
    from socialalign_lib.world import lexicon as lx

    emoji = [e for es in lx.EMOJI.values() for e in es]
    pictographs = [e for e in emoji if not e.startswith("[")]
    assert pictographs  # the world does write Unicode emoji
    fig, ax = plt.subplots()
    ax.set_title(" ".join(pictographs))
    assert missing_glyphs(fig)  # raw: the figure font has none of them
    shown = [figure_text(e) for e in emoji]
    assert all(re.fullmatch(r"\[[^\[\]]+\]", s) for s in shown), shown
    fig, ax = plt.subplots()
    ax.set_title(" ".join(shown))
    assert save_figure(fig, "emoji", tmp_path).exists()


def test_figure_text_keeps_text_and_symbols_and_drops_glue_and_fffd():
    assert figure_text("好😭！❤️[doge] ★ a\ufffdb") == "好[泪]！[心][doge] ★ ab"
    assert figure_text("👍🏻👨\u200d👩\u200d👧") == "[赞][表情]"


# ---- no figure bypasses the check --------------------------------------------------------------------------


def test_every_figure_file_is_written_by_save_figure():
    """``savefig`` appears only in ``plots.save_figure`` and ``explore.show_figure`` (an in-memory PNG for a widget):
    notebooks and the library write figure files through ``save_figure``, so the glyph check sees every one."""
    calls = {}
    for path in sorted((ROOT / "socialalign_lib").rglob("*.py")):
        n = len(re.findall(r"\.savefig\(", path.read_text(encoding="utf-8")))
        if n:
            calls[path.relative_to(ROOT).as_posix()] = n
    assert calls == {"socialalign_lib/plots.py": 1, "socialalign_lib/explore/display.py": 1}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = "".join(
            "".join(c["source"])
            for c in json.loads(nb.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "code"
        )
        assert ".savefig(" not in code, nb.name


# ---- the figure functions on tiny data -----------------------------------------------------------------------


def _scores() -> pd.DataFrame:
    """Table-5-like scores: a zero-shot MAE 100x the others, a constant SFT (NaN SRC), a model with no answers."""
    rows = []
    for m, mae in (("zero-shot base", 200.0), ("SFT", 1.4), ("SFT+DPO", 1.3), ("per-user mean", 1.5)):
        for k in (1, 2):
            const = m == "SFT" and k == 1
            failed = m == "SFT+DPO" and k == 2
            src = np.nan if const or failed else 0.3
            rows.append(
                {
                    "method": m,
                    "shots": k,
                    "MAE": np.nan if failed else mae * (1 + 0.1 * k),
                    "MAE_lo": mae * 0.9,
                    "MAE_hi": mae * 1.3,
                    "SRC": src,
                    "SRC_lo": src - 0.1,
                    "SRC_hi": src + 0.1,
                    "n": 30,
                    "failed": 30 if failed else 0,
                    "failure_rate": 1.0 if failed else 0.0,
                    "constant": const,
                }
            )
    return pd.DataFrame(rows)


def test_popularity_scores_clip_an_off_scale_mae_and_explain_missing_spearman(tmp_path):
    from socialalign_lib.popularity.smp_llm_eval import plot_scores

    fig = plot_scores(_scores(), "cold start")
    mae_ax, src_ax = fig.axes[:2]
    top = mae_ax.get_ylim()[1]
    assert 1.5 * 1.3 * 1.2 < top < 10  # the trained methods' bars fill the axis; the 220 is off it
    texts = _texts(fig)
    assert any(t.startswith("220 [180, 260]") for t in texts)  # the clipped bar carries its value and CI
    assert "n/a (constant)" in [t.get_text() for t in src_ax.texts]
    assert [t.get_text() for t in mae_ax.texts].count("no answer") == 1
    assert any("Spearman is undefined" in t for t in texts) and any("no number" in t for t in texts)
    save_figure(fig, "scores", tmp_path)


def test_popularity_scores_autoscale_without_outliers():
    from socialalign_lib.popularity.smp_llm_eval import plot_scores

    scores = _scores()
    scores = scores[scores["method"] != "zero-shot base"]
    fig = plot_scores(scores)
    assert not any("MAE beyond the axis" in t for t in _texts(fig))


def test_heldout_panels_have_units_and_mark_missing_kl_not_zero(tmp_path):
    from socialalign_lib.popalm.evaluate import plot_eval

    summary = pd.DataFrame(
        {"rm": [0.4, 0.9], "rm ±": [0.1, 0.1], "kl": [2.0, np.nan], "kl ±": [0.2, np.nan]},
        index=["PPO", "real (all)"],
    )
    fig = plot_eval(summary)
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "score (std units, 0 = average real reply)",
        "KL(policy ‖ SFT), nats per reply",
    ]
    assert [t.get_text() for t in fig.axes[1].texts] == ["n/a"]
    save_figure(fig, "heldout", tmp_path)


def test_split_overview_counts_replies_and_new_users_and_topics(tmp_path):
    from socialalign_lib.plots import split_overview

    records = pd.DataFrame(
        {
            "split": ["train"] * 4 + ["test_user"] * 2,
            "user_id": ["u1", "u1", "u2", "u2", "u3", "u4"],
            "topic_id": ["t1", "t2", "t1", "t2", "t1", "t1"],
            "sentiment": ["negative", "positive", "neutral", "negative", "positive", "positive"],
        }
    )
    fig = split_overview(records, ("negative", "neutral", "positive"), n_variants=3)
    replies, users_topics = fig.axes[0], fig.axes[1]
    assert [p.get_height() for p in replies.patches] == [4, 2]
    heights = [p.get_height() for p in users_topics.patches]  # per split: users seen, new; topics seen, new
    assert heights == [2, 0, 0, 2, 2, 1, 0, 0]  # test_user: 2 new users, its 1 topic seen in train
    assert "× 3 prompt variants" in replies.get_title()  # records are not drawn: equal by construction
    save_figure(fig, "splits", tmp_path)


def test_crowd_bars_and_topic_distributions_show_names_at_a_readable_size(tmp_path):
    from socialalign_lib.crowd.plots import plot_crowd_bars
    from socialalign_lib.plots import stacked_distributions

    labels = ["negative", "neutral", "positive"]
    real = pd.DataFrame([[0.5, 0.2, 0.3], [0.1, 0.1, 0.8]], index=["t1", "t2"], columns=labels)
    names = {"t1": "#油价😡# · 物价", "t2": "#球赛# · 体育"}
    fig = plot_crowd_bars({"real": real, "model": real[::-1]}, labels, topic_names=names)
    ticks = fig.axes[0].get_xticklabels()
    assert [t.get_text() for t in ticks] == ["#油价[怒]# · 物价", "#球赛# · 体育"]
    assert min(t.get_fontsize() for t in ticks) >= 8
    save_figure(fig, "crowd", tmp_path)
    fig = stacked_distributions(
        {f"t{i}": [0.2, 0.3, 0.5] for i in range(60)},
        tuple(labels),
        "crowd",
        names={f"t{i}": f"#话题{i}# · 社会" for i in range(60)},
    )
    assert min(t.get_fontsize() for t in fig.axes[0].get_xticklabels()) >= 8
    save_figure(fig, "topics", tmp_path)


def test_generation_view_figure_draws_emoji_as_codes_and_labels_the_gate_axis(tmp_path):
    from socialalign_lib.explore import generation_view_figure

    view = {
        "user_id": "u1",
        "persona_user_id": "u1",
        "screen_name": "用户😄",
        "hashtag": "话题",
        "category": "社会",
        "custom_news": False,
        "news": "新闻🎉正文",
        "persona": {"interests": "健康", "style": "爱用表情👍"},
        "real_reply": "好😭！",
        "replies": {"LoRA": "回复\ufffd", "PAC-LoRA": "哈哈🤔"},
        "gates": {"PAC-LoRA": {"gate_a": [0.2, 0.5, 0.3], "gate_b": [0.4, 0.3, 0.3]}},
        "decoding": {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "seed": 0},
    }
    fig = generation_view_figure(view, pyplot=False)
    text = "\n".join(_texts(fig))
    assert "[泪]" in text and "[思考]" in text and "\ufffd" not in text
    gate_axes = [ax for ax in fig.axes if ax.get_title().startswith("PAC-LoRA: gate")]
    assert len(gate_axes) == 2 and all(ax.get_ylabel().startswith("gate weight") for ax in gate_axes)
    save_figure(fig, "generation", tmp_path)


def test_results_table_counts_seeds_instead_of_showing_a_seed_id(tmp_path):
    from socialalign_lib.results import plot_results_table, results_table

    long = pd.DataFrame(
        [
            {
                "method": m,
                "split": "test_user",
                "seed": s,
                "metric": "rouge-l",
                "value": v,
                "low": v - 0.01,
                "high": v + 0.01,
                "n": 10,
            }
            for m, seeds in (("LoRA", (0,)), ("PAC-LoRA", (0, 1, 2)))
            for s in seeds
            for v in (0.1 + 0.01 * s,)
        ]
    )
    fig = plot_results_table(results_table(long), metrics_=("rouge-l",))
    table = fig.axes[0].tables[0]
    cells = table.get_celld()
    header = [cells[0, c].get_text().get_text() for c in range(3)]
    assert header[-1] == "n_seeds"
    assert [cells[r, 2].get_text().get_text() for r in (1, 2)] == ["1", "3"]
    save_figure(fig, "results", tmp_path)
