"""Explorer view functions return the right topic's numbers and replies that exist."""

from __future__ import annotations

import numpy as np
import pytest

from socialalign_lib.explore import topic_view, user_view, world_explorer


@pytest.fixture(scope="module")
def world(tiny_world):
    return tiny_world


@pytest.mark.parametrize("index", [0, 3, -1])
def test_topic_view(world, index):
    topic = world.topics[index]
    v = topic_view(world, topic.topic_id)
    assert v["news"] == topic.news and v["hashtag"] == topic.hashtag
    assert np.allclose(list(v["true_distribution"].values()), world.true_crowd()[topic.topic_id])
    assert np.isclose(sum(v["empirical_distribution"].values()), 1)
    real = {(r.post.user_id, r.post.text) for r in world.responses if r.topic_id == topic.topic_id}
    assert v["replies"] and all((r["user_id"], r["text"]) in real for r in v["replies"])


@pytest.mark.parametrize("index", [0, 7])
def test_user_view(world, index):
    user = world.users[index]
    v = user_view(world, user.user_id)
    assert v["history"][0] == user.history[0].full_text
    assert set(v["persona"]) == {"interests", "language_style", "emotional_tone", "personality", "values"}
    assert all(r["text"] for r in v["replies"])


def test_widget_builds_headless_and_saves_static_view(world, tmp_path):
    box = world_explorer(world, figures_dir=tmp_path)
    assert len(box.children) == 2
    assert (tmp_path / "00_world_explorer.png").exists()


def test_under_a_headless_runner_explorers_show_the_static_view_and_build_no_widget(
    world, tmp_path, monkeypatch
):
    """course.execute_notebook sets SOCIALALIGN_HEADLESS=1: nbclient can hang on widget comms (nbclient#312)."""
    import ipywidgets
    from IPython.display import Image

    monkeypatch.setenv("SOCIALALIGN_HEADLESS", "1")
    before = len(ipywidgets.Widget.widgets)
    shown = world_explorer(world, figures_dir=tmp_path)
    assert isinstance(shown, Image) and shown.data == (tmp_path / "00_world_explorer.png").read_bytes()
    assert len(ipywidgets.Widget.widgets) == before


# ------------------------------------------------------------------------------------------ persona explorer


@pytest.fixture(scope="module")
def course(tiny_course):
    return tiny_course


@pytest.mark.parametrize("user_index", [0, 5, 33])
def test_persona_view_truth_retrieval_and_backend(course, user_index):
    from socialalign_lib.explore import persona_view

    world = course.world
    user = world.users[user_index]
    lu = world.latent_users[user.user_id]
    v = persona_view(course, user.user_id)
    # the truth is this user's latent attributes
    assert v["truth"]["persona"] == lu.true_persona()
    t = v["truth"]["attributes"]
    assert t["interests"] == lu.top_interests(3) and t["archetype"] == lu.archetype
    assert t["personality"] == lu.personality and t["emotional_baseline"] == lu.emotional_baseline
    # topic None → the first topic the user replied to, and the reply shown is theirs
    first = next(r for r in world.responses if r.post.user_id == user.user_id)
    assert v["topic_id"] == first.topic_id and v["reply"] == first.post.text
    # retrieved: the user's own history (minus the reply), k at most, scores descending
    own = {p.post_id for p in user.history} - {first.post.post_id}
    ids = [h["post_id"] for h in v["retrieved"]]
    scores = [h["score"] for h in v["retrieved"]]
    assert ids and set(ids) <= own and len(ids) == min(course.config.retrieval.k, len(own))
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    # ... and exactly the history block of the dataset's record for this case
    rec = next(
        r
        for s in course.dataset.values()
        for r in s
        if r["user_id"] == user.user_id and r["topic_id"] == first.topic_id and r["variant"] == "full"
    )
    assert ids == rec["history_ids"]
    # the default backend is the pipeline's statistical persona
    stat = v["backends"]["statistical"]
    assert stat["persona"] == course.personas[user.user_id].persona.to_dict()
    assert set(stat["scores"]) == set(t) and all(0.0 <= s <= 1.0 for s in stat["scores"].values())


def test_persona_view_scores_the_true_persona_perfectly_and_records_failures(course):
    from socialalign_lib.build.persona.backends import PersonaBackendError
    from socialalign_lib.data.schema import Persona
    from socialalign_lib.explore import persona_view

    world = course.world
    user, topic = world.users[7], world.topics[-1]

    def broken(u):
        raise PersonaBackendError("endpoint down")

    backends = {
        "oracle": lambda u: Persona(**world.latent_users[u.user_id].true_persona()),
        "missing": {},
        "broken": broken,
    }
    v = persona_view(course, user.user_id, topic.topic_id, backends=backends)
    assert v["topic_id"] == topic.topic_id and v["news"] == topic.news
    assert v["backends"]["oracle"]["scores"] == dict.fromkeys(v["truth"]["attributes"], 1.0)
    assert v["backends"]["missing"]["persona"] is None and v["backends"]["missing"]["error"]
    assert "endpoint down" in v["backends"]["broken"]["error"] and v["backends"]["broken"]["scores"] is None
    scores = [h["score"] for h in v["retrieved"]]
    assert scores == sorted(scores, reverse=True)
    assert {h["post_id"] for h in v["retrieved"]} <= {p.post_id for p in user.history}
    with pytest.raises(KeyError):
        persona_view(course, "no-such-user")


def test_highlight_spans_marks_exactly_the_spans():
    from socialalign_lib.explore import highlight_spans

    out = highlight_spans("ab<c>de", {"user": (0, 2), "news": (2, 5)})
    assert '">ab</mark>' in out and '">&lt;c&gt;</mark>de' in out
    with pytest.raises(ValueError):
        highlight_spans("abcdef", {"user": (0, 3), "news": (2, 5)})


def test_persona_explorer_builds_headless_and_saves_static_view(course, tmp_path):
    from socialalign_lib.explore import persona_explorer

    box = persona_explorer(course, figures_dir=tmp_path)
    user_dd, topic_dd = box.children[0].children
    user_dd.value = course.world.users[1].user_id  # switching user moves the news to one they replied to
    replied = [r.topic_id for r in course.world.responses if r.post.user_id == user_dd.value]
    assert topic_dd.value in replied
    assert (tmp_path / "02_persona_explorer.png").exists()


# ------------------------------------------------------------------------------------------ crowd explorer


@pytest.fixture(scope="module")
def crowd(world):
    """Test-topic replies of the tiny world with a hand-made "generated" crowd (each reply answered by the next
    user's real reply to the same topic), labelled by the world labeller."""
    import pandas as pd

    from socialalign_lib.crowd.distributions import label_replies
    from socialalign_lib.sentiment import train_world_labeller

    rows = [
        (r.topic_id, r.post.user_id, world.topic(r.topic_id).category, r.post.text, r.sentiment)
        for r in world.responses
        if r.split == "test_topic"
    ]
    df = pd.DataFrame(rows, columns=["topic_id", "user_id", "category", "reference", "sentiment"])
    df["generated"] = df.groupby("topic_id")["reference"].transform(lambda s: list(s.iloc[1:]) + [s.iloc[0]])
    df.loc[df.index[::3], "generated"] = "太离谱了，必须严查！"  # shift the generated crowd towards negative
    return label_replies(df, train_world_labeller(world))


def test_crowd_view_numbers_and_replies_are_the_topics_own(world, crowd):
    from socialalign_lib.crowd.baselines import true_crowd
    from socialalign_lib.crowd.distributions import crowd_frames
    from socialalign_lib.crowd.divergences import compare_crowds, js_divergence, kl_divergence
    from socialalign_lib.explore import crowd_view

    for tid in sorted(set(crowd["topic_id"])):
        rows = crowd[crowd.topic_id == tid]
        v = crowd_view(crowd, tid, world=world, n_boot=200)
        real = [np.mean(rows["real_sentiment"] == lab) for lab in world.labels]
        pred = [np.mean(rows["pred_sentiment"] == lab) for lab in world.labels]
        assert list(v["real_distribution"].values()) == pytest.approx(real)
        assert list(v["pred_distribution"].values()) == pytest.approx(pred)
        assert v["js"] == pytest.approx(js_divergence(real, pred)) and v["kl"] == pytest.approx(
            kl_divergence(real, pred)
        )
        assert v["js_ci"][0] <= v["js_ci"][1] and v["n_real"] == v["n_pred"] == len(rows)
        assert list(v["true_distribution"].values()) == pytest.approx(
            true_crowd(world, rows).loc[tid, list(world.labels)]
        )
        assert v["news"] == world.topic(tid).news
        # every reply behind a bar exists, belongs to this topic and carries that bar segment's label
        for side, text_col, label_col in (
            ("real", "reference", "real_sentiment"),
            ("generated", "generated", "pred_sentiment"),
        ):
            assert sum(v["counts"][side].values()) == len(rows)
            for lab, items in v["replies"][side].items():
                assert len(items) == min(4, v["counts"][side][lab])
                for r in items:
                    match = rows[(rows.user_id == r["user_id"]) & (rows[text_col] == r["text"])]
                    assert len(match) == 1 and match[label_col].iloc[0] == lab
    # a precomputed comparison is used as is
    real_df, pred_df = crowd_frames(crowd)
    cmp = compare_crowds(real_df, pred_df, world.labels, n_boot=50, seed=4)
    v = crowd_view(crowd, cmp.index[0], cmp)
    assert v["js_ci"] == (cmp["js_low"].iloc[0], cmp["js_high"].iloc[0]) and v["true_distribution"] is None
    with pytest.raises(KeyError):
        crowd_view(crowd, "no-such-topic")


def test_crowd_explorer_builds_headless_and_saves_static_view(world, crowd, tmp_path):
    from socialalign_lib.explore import crowd_explorer

    box = crowd_explorer(crowd, world=world, figures_dir=tmp_path, method="PAC-LoRA")
    dropdown = box.children[0]
    assert set(dropdown.options) == {(f"{t} #{world.topic(t).hashtag}#", t) for t in set(crowd["topic_id"])}
    dropdown.value = dropdown.options[-1][1]  # re-renders without error
    assert (tmp_path / "05_crowd_explorer.png").exists()


# ---- generation explorer --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def socialllms():
    """Untrained stand-ins for the three SocialLLMs (no training needed to test the view): the embedded base model
    zero-shot, plain LoRA and PAC-LoRA with random B so that the adapters change the replies."""
    import torch
    from peft import LoraConfig, get_peft_model

    from socialalign_lib.models import load_base_model
    from socialalign_lib.pac_lora import PacLoraConfig, get_pac_model
    from socialalign_lib.paths import EMBEDDED_MODEL

    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = load_base_model(EMBEDDED_MODEL, device="cpu")
    lora_base, tokenizer = load_base_model(EMBEDDED_MODEL, device="cpu")
    lora = get_peft_model(
        lora_base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    pac = get_pac_model(load_base_model(EMBEDDED_MODEL, device="cpu")[0], PacLoraConfig(init_weights=False))
    return {"base (zero-shot)": base, "LoRA": (lora.eval(), tokenizer), "PAC-LoRA": (pac.eval(), tokenizer)}


def test_generation_view_replies_for_every_model_and_gates_that_sum_to_one(course, socialllms):
    from socialalign_lib.explore import generation_view

    case = course.split("test_user")[0]
    v = generation_view(course, socialllms, case["user_id"], case["topic_id"], max_new_tokens=8)
    assert set(v["replies"]) == set(socialllms) and all(isinstance(t, str) for t in v["replies"].values())
    assert any(v["replies"].values())
    assert list(v["gates"]) == ["PAC-LoRA"]  # only PAC-LoRA has gates
    for side in ("gate_a", "gate_b"):
        assert len(v["gates"]["PAC-LoRA"][side]) == 3 and np.isclose(sum(v["gates"]["PAC-LoRA"][side]), 1.0)
    # the record is the dataset's own record for this case: same prompt, same spans, the real reply
    assert v["record"]["instruction"] == case["instruction"] and v["record"]["news_span"] == case["news_span"]
    assert v["real_reply"] == case["output"] and v["real_sentiment"] == case["sentiment"]


def test_generation_view_swaps_persona_and_takes_typed_news(course, socialllms):
    from socialalign_lib.explore import generation_view

    case = course.split("test_user")[0]
    other = next(u.user_id for u in course.world.users if u.user_id != case["user_id"])
    pac = {"PAC-LoRA": socialllms["PAC-LoRA"]}
    own = generation_view(course, pac, case["user_id"], case["topic_id"], do_sample=False, max_new_tokens=6)
    swapped = generation_view(
        course,
        pac,
        case["user_id"],
        case["topic_id"],
        persona_user_id=other,
        do_sample=False,
        max_new_tokens=6,
    )
    assert swapped["persona"] == course.personas[other].persona.to_dict() != own["persona"]
    assert swapped["record"]["instruction"].startswith(
        own["record"]["instruction"].split("以下是你的用户画像")[0]
    )
    assert (
        swapped["gates"]["PAC-LoRA"]["gate_b"] != own["gates"]["PAC-LoRA"]["gate_b"]
    )  # gate B reads the persona
    typed = generation_view(
        course,
        pac,
        case["user_id"],
        case["topic_id"],
        news="某市地铁票价下调，市民出行更便宜。",
        do_sample=False,
        max_new_tokens=6,
    )
    assert (
        typed["custom_news"]
        and typed["news"] == "某市地铁票价下调，市民出行更便宜。"
        and typed["real_reply"] is None
    )
    assert typed["gates"]["PAC-LoRA"]["gate_a"] != own["gates"]["PAC-LoRA"]["gate_a"]  # gate A reads the news


def test_generation_explorer_builds_headless_and_saves_static_view(course, socialllms, tmp_path):
    from socialalign_lib.explore import generation_explorer

    box = generation_explorer(course, socialllms, figures_dir=tmp_path, max_new_tokens=6)
    assert len(box.children) == 2
    assert (tmp_path / "04_generation_explorer.png").exists()


# ---- explorer charts stay off pyplot (JupyterLab 4.6 runs widget callbacks on a kernel subshell thread) --------


@pytest.fixture
def shown(monkeypatch):
    """Every object the explorers display, with pyplot's open figure numbers at that moment. The inline
    backend's "draw and close all open figures" (run by a message on the subshell thread) races a callback only
    through pyplot's list, so a chart must not be in it even while it is being displayed."""
    import IPython.display
    import matplotlib.pyplot as plt

    plt.close("all")
    calls: list[tuple[object, list[int]]] = []
    monkeypatch.setattr(
        IPython.display, "display", lambda *objs, **_: calls.extend((o, plt.get_fignums()) for o in objs)
    )
    yield calls
    plt.close("all")


def _figures(calls):
    from matplotlib.figure import Figure

    return [(o, nums) for o, nums in calls if isinstance(o, Figure)]


def _assert_displayed_off_pyplot(calls):
    import matplotlib.pyplot as plt

    figs = _figures(calls)
    assert figs, "the callback displayed no figure"
    assert all(nums == [] for _, nums in figs), f"pyplot held figures while a chart was displayed: {figs}"
    assert plt.get_fignums() == []
    for fig, _ in figs:  # drawn for real: axes with text on them
        assert fig.axes and any(
            t.get_text() for ax in fig.axes for t in ax.texts + [ax.title] + ax.get_yticklabels()
        )


def test_world_explorer_callback_displays_a_figure_pyplot_never_sees(world, tmp_path, shown):
    box = world_explorer(world, figures_dir=tmp_path)
    dropdown = box.children[0].children[0]
    shown.clear()
    dropdown.value = dropdown.options[2][
        1
    ]  # the first change after the cell ran (blank chart in JupyterLab 4.6)
    _assert_displayed_off_pyplot(shown)
    assert f"#{world.topic(dropdown.value).hashtag}#" in _figures(shown)[0][0].axes[0].get_title()


def test_persona_explorer_callback_displays_a_figure_pyplot_never_sees(course, tmp_path, shown):
    from socialalign_lib.explore import persona_explorer

    box = persona_explorer(course, figures_dir=tmp_path)
    user_dd, topic_dd = box.children[0].children
    shown.clear()
    user_dd.value = course.world.users[3].user_id
    _assert_displayed_off_pyplot(shown)
    assert course.world.users[3].screen_name in _figures(shown)[-1][0].axes[0].get_title()


def test_crowd_explorer_callback_displays_a_figure_pyplot_never_sees(world, crowd, tmp_path, shown):
    from socialalign_lib.explore import crowd_explorer

    box = crowd_explorer(crowd, world=world, figures_dir=tmp_path, method="PAC-LoRA")
    dropdown = box.children[0]
    shown.clear()
    dropdown.value = dropdown.options[-1][1]
    _assert_displayed_off_pyplot(shown)
    assert _figures(shown)[0][0].axes[0].get_title().startswith(dropdown.value)


def test_generation_explorer_callback_displays_a_figure_pyplot_never_sees(
    course, socialllms, tmp_path, shown
):
    from socialalign_lib.explore import generation_explorer

    box = generation_explorer(
        course, {"PAC-LoRA": socialllms["PAC-LoRA"]}, figures_dir=tmp_path, max_new_tokens=4
    )
    button = box.children[0].children[-1].children[-1]
    shown.clear()
    button.click()
    _assert_displayed_off_pyplot(shown)


def test_off_pyplot_figures_save_the_same_static_png(world, course, crowd, tmp_path):
    """The headless figures (``make course``, README) are drawn off pyplot now: byte-identical to pyplot's."""
    import matplotlib.pyplot as plt

    from socialalign_lib.explore import (
        crowd_view,
        crowd_view_figure,
        distribution_bars,
        persona_view,
        persona_view_figure,
    )
    from socialalign_lib.plots import save_figure

    v = topic_view(world, world.topics[0].topic_id)
    dists = {"true": v["true_distribution"], "observed": v["empirical_distribution"]}
    pv = persona_view(course, course.world.users[2].user_id)
    cv = crowd_view(crowd, sorted(set(crowd["topic_id"]))[0], world=world, n_boot=50)
    builders = {
        "bars": lambda **kw: distribution_bars(dists, "t", **kw),
        "persona": lambda **kw: persona_view_figure(pv, **kw),
        "crowd": lambda **kw: crowd_view_figure(cv, "PAC-LoRA", **kw),
    }
    for name, build in builders.items():
        plt.close("all")
        off = save_figure(build(pyplot=False), f"{name}-off", tmp_path)
        assert plt.get_fignums() == []
        on_fig = build()
        assert plt.get_fignums() == [on_fig.number]  # the public default is unchanged: a pyplot figure
        on = save_figure(on_fig, f"{name}-on", tmp_path)
        plt.close(on_fig)
        assert off.read_bytes() == on.read_bytes(), name


def test_show_figure_falls_back_to_png_when_no_formatter_draws_figures(monkeypatch):
    """Under ``%matplotlib widget`` IPython has no formatter for a bare Figure: show a PNG, not its text repr."""
    import IPython
    import IPython.display
    from IPython.core.formatters import DisplayFormatter
    from matplotlib.figure import Figure

    from socialalign_lib.explore import show_figure

    shell = type("Shell", (), {"display_formatter": DisplayFormatter()})()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    calls = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **_: calls.append(obj))
    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1])
    show_figure(fig)
    assert isinstance(calls[-1], IPython.display.Image) and calls[-1].data.startswith(b"\x89PNG")
    shell.display_formatter.formatters["image/png"].for_type(
        Figure, lambda f: b"png"
    )  # as the inline backend does
    show_figure(fig)
    assert calls[-1] is fig
