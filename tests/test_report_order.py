"""Tests for what a report leads with and how long it is: scope, summary table and headline figure first and
provenance last in every format, a two-checkpoint sweep's PDF in at most 4 pages, one line for an empty table,
notes only where they apply, changes signed as named, seeds grouped into one row and one line, and figure notes
that cover nothing."""

import re
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # no display needed: figures are only drawn
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from resbench.report import write_report  # noqa: E402
from resbench.report.families import family_labels  # noqa: E402
from resbench.report.figure_set import add_footnote  # noqa: E402
from resbench.report.figures import accuracy_vs_test_res, train_test_heatmaps  # noqa: E402
from resbench.report.headline import HEADLINE_TITLE, headline_figure  # noqa: E402
from resbench.report.sections import PROVENANCE_TITLE, SCOPE_TITLE  # noqa: E402
from resbench.report.summary import FULL_SUMMARY_TITLE, SUMMARY_TITLE, summary_table  # noqa: E402
from resbench.report.tables import ADAPTIVE_NOTE, CHANGE_TITLE, SEEN_NOTE  # noqa: E402
from resbench.sweep import SweepConfig, run_sweep  # noqa: E402
from test_report import grid, results_frame, synthetic_sweep  # noqa: E402

pytestmark = pytest.mark.usefixtures("keep_torch_threads")
SIZES = [7, 14, 28]


@pytest.fixture(scope="module")
def small(trained, tmp_path_factory):
    """(OUT, write_report's result, results frame) of both tiny checkpoints x SIZES with per-image records, as md,
    pdf, html and tex."""
    sweep = tmp_path_factory.mktemp("sweep")
    threads = torch.get_num_threads()
    try:
        run_sweep(SweepConfig(checkpoints=[str(trained["s4nd"].parent)], out=str(sweep), log_samples=True,
                              test_res=[(s, s) for s in SIZES], limit=60, threads=1), quiet=True)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path_factory.mktemp("report") / "small"
    result = write_report([sweep], out, ["md", "pdf", "html", "tex"])
    from resbench.report import load_sweeps

    return out, result, load_sweeps([sweep])[0]


HEADINGS = {"md": re.compile(r"^## (.*)$", re.M), "html": re.compile(r"<h2>(.*?)</h2>"),
            "tex": re.compile(r"\\subsection\*\{(.*)\}")}


@pytest.mark.parametrize("fmt", ["md", "html", "tex"])
def test_scope_summary_and_headline_come_first_and_provenance_last(small, fmt):
    out, result, _ = small
    text = out.with_suffix(f".{fmt}").read_text()
    titles = HEADINGS[fmt].findall(text)
    assert titles[0] == SCOPE_TITLE and titles[-1] == PROVENANCE_TITLE
    assert titles[1].startswith(SUMMARY_TITLE.split(" (")[0]) and titles[2].startswith(HEADLINE_TITLE.split(" (")[0])
    assert len(titles) == 3 + len(result["tables"]) + 3 + 1  # the other figures: accuracy, heatmap, reliability
    hashes = re.findall(r"[0-9a-f]{64}", text)
    assert hashes and min(text.index(h) for h in hashes) > text.rindex(PROVENANCE_TITLE)  # hashes: appendix only


def test_a_two_checkpoint_sweep_is_four_pdf_pages_with_the_finding_on_page_one(small):
    out, result, _ = small
    assert len(PdfReader(out.with_suffix(".pdf")).pages) == len(result["pages"]) <= 4
    assert result["pages"][0][:4] == ["title", "scope", SUMMARY_TITLE, "headline"]
    assert result["pages"][-1][-1] == "provenance"


def md_section(md: str, title: str) -> list[str]:
    """The non-blank lines under the markdown heading that starts with `title`."""
    body = md.split(f"## {title}", 1)[1].split("\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in body.splitlines() if line.strip()]


def test_an_empty_table_is_one_line_that_says_why(small):
    out, result, _ = small
    md = out.with_suffix(".md").read_text()
    empty = [title for title, table in result["tables"].items() if table.empty]
    assert empty  # no checkpoint here has a twin trained without the bandlimit
    for title in empty:
        lines = md_section(md, title)
        assert len(lines) == 1 and lines[0].startswith("_(no rows: ") and len(lines[0]) > 20, (title, lines)


def test_no_note_that_does_not_apply(small):
    out, result, _ = small
    md = out.with_suffix(".md").read_text()
    assert "\u2020" not in md and SEEN_NOTE not in md  # no cell at a size a checkpoint trained at but its own
    assert ADAPTIVE_NOTE not in md  # no adaptive cells were swept


def test_changes_are_signed_as_their_name_says(small):
    out, result, frame = small
    md = out.with_suffix(".md").read_text()
    assert not re.search(r"^## Drop", md, re.M) and CHANGE_TITLE in md
    ok = frame[(frame["error"] == "") & (frame["policy"] == "native")]
    acc = {(r.checkpoint, r.test_res, r.bandlimit): 100 * r.accuracy for r in ok.itertuples()}
    summary = result["summary"].set_index("model")
    assert sorted(summary.index) == ["conv2d_iso_14", "s4nd_iso_14"]
    for name, bandlimit in (("conv2d_iso_14", "none"), ("s4nd_iso_14", "on")):
        for side, size in (("below", "7"), ("above", "28")):
            want = acc[(name, size, bandlimit)] - acc[(name, "14", bandlimit)]  # negative where it loses
            assert float(summary.loc[name, f"change {side}: mean"]) == pytest.approx(want, abs=0.051)
            assert summary.loc[name, f"change {side}: worst"].endswith(f"at {size}")
    change = result["tables"][CHANGE_TITLE].set_index(["checkpoint", "bandlimit"])
    assert change.loc[("conv2d_iso_14", "none"), "7"] == pytest.approx(
        acc[("conv2d_iso_14", "7", "none")] - acc[("conv2d_iso_14", "14", "none")], abs=0.006)


def seeded_frame() -> pd.DataFrame:
    """Three seeds of recipe "a" (native accuracy 80, 82, 84; 60, 64, 68 at 7) and one checkpoint "b"."""
    cells = []
    for seed, (native, low) in enumerate([(0.80, 0.60), (0.82, 0.64), (0.84, 0.68)]):
        cells += grid(f"a_s{seed}", "s4nd_iso", 14, [7, 14], policies=("native",),
                      accuracy=lambda s, p, b, native=native, low=low: native if s == "14" else low)
    cells += grid("b", "conv2d_iso", 14, [7, 14], policies=("native",), accuracy=0.5)
    return results_frame(cells)


def test_seeds_of_one_recipe_are_one_summary_row_as_mean_sd_and_n():
    families = {f"a_s{i}": "a_s0 (seeds 0, 1, 2)" for i in range(3)}
    table = summary_table(seeded_frame(), families).set_index("model")
    assert list(table.index) == ["b", "a_s0 (seeds 0, 1, 2)"]  # conv2d_iso before s4nd_iso, as every table
    assert table.loc["a_s0 (seeds 0, 1, 2)", "native %"] == "82.0 \u00b1 2.0 (n=3)"
    assert table.loc["a_s0 (seeds 0, 1, 2)", "change below: mean"] == "-18.0 \u00b1 2.0 (n=3)"  # -20, -18, -16
    assert table.loc["b", "native %"].startswith("50.0 [")  # one checkpoint: its Wilson interval
    assert table.loc["b", "change below: mean"] == "+0.0"
    assert "change above: mean" not in table  # no size above training was swept: no empty columns


def test_family_labels_group_the_seeds_of_one_recipe():
    frame = seeded_frame()
    recipe = {"a_s0": ("lr", 0), "a_s1": ("lr", 1), "a_s2": ("lr", 2), "b": ("other", 0)}
    names = dict(zip(frame["checkpoint_sha256"], frame["checkpoint"]))
    files = SimpleNamespace(get=lambda sha: SimpleNamespace(provenance={"train_config": {
        "lr": recipe[names[sha]][0], "seed": recipe[names[sha]][1]}}))
    labels = family_labels(frame, [], files)
    assert labels == {"a_s0": "a_s0 (seeds 0, 1, 2)", "a_s1": "a_s0 (seeds 0, 1, 2)", "a_s2": "a_s0 (seeds 0, 1, 2)",
                      "b": "b"}


def test_a_setting_left_at_none_does_not_split_a_family():
    """A config field added after a seed was trained (absent there, None in its twins) is the same recipe; a field
    set to a value is not."""
    frame = seeded_frame()
    names = dict(zip(frame["checkpoint_sha256"], frame["checkpoint"]))
    configs = {"a_s0": {"lr": 1, "seed": 0}, "a_s1": {"lr": 1, "seed": 1, "multiscale": None},
               "a_s2": {"lr": 1, "seed": 2, "multiscale": None}, "b": {"lr": 1, "seed": 3, "multiscale": "7,14"}}
    files = SimpleNamespace(get=lambda sha: SimpleNamespace(provenance={"train_config": configs[names[sha]]}))
    labels = family_labels(frame, [], files)
    assert labels == {"a_s0": "a_s0 (seeds 0, 1, 2)", "a_s1": "a_s0 (seeds 0, 1, 2)", "a_s2": "a_s0 (seeds 0, 1, 2)",
                      "b": "b"}


def two_run_sets():
    """(frame, files) of two sets of runs of one recipe, seeds 0-2 each: main, main_seed1, main_seed2 and
    arm_seed0, arm_seed1, arm_seed2 (the provenance of each names the same recipe and its seed)."""
    frame = pd.concat([seeded_frame(), seeded_frame().assign(
        checkpoint=lambda f: f["checkpoint"].str.replace("a_s", "arm_seed", regex=False),
        checkpoint_sha256=lambda f: f["checkpoint_sha256"] + "x")], ignore_index=True)
    frame = frame[~frame["checkpoint"].isin(["b", "bx"])]
    frame["checkpoint"] = frame["checkpoint"].replace({"a_s0": "main", "a_s1": "main_seed1", "a_s2": "main_seed2"})
    names = dict(zip(frame["checkpoint_sha256"], frame["checkpoint"]))
    seed = {name: int(name[-1]) if name[-1].isdigit() else 0 for name in names.values()}
    files = SimpleNamespace(get=lambda sha: SimpleNamespace(provenance={"train_config": {
        "lr": 1, "seed": seed[names[sha]]}}))
    return frame, files


def test_two_sets_of_runs_of_one_recipe_are_two_families():
    """An ablation arm that repeats the main recipe with the same seeds: each set (names differing only in a
    _seed<k> suffix) is a family of its own, not one family with every seed twice, and not none."""
    frame, files = two_run_sets()
    labels = family_labels(frame, [], files)
    assert {labels[f"arm_seed{i}"] for i in range(3)} == {"arm (seeds 0, 1, 2)"}
    assert {labels[name] for name in ("main", "main_seed1", "main_seed2")} == {"main (seeds 0, 1, 2)"}


def test_the_seed_table_keeps_two_sets_of_runs_of_one_recipe_apart():
    """Two sets of runs of one recipe (seeds 0-2 each): two rows of the seed table, each its own three files."""
    from resbench.report.stats import seed_spread_table

    frame, files = two_run_sets()
    table = seed_spread_table(frame, [], files, family_labels(frame, [], files))
    assert sorted(table["checkpoints"]) == ["arm_seed0, arm_seed1, arm_seed2", "main, main_seed1, main_seed2"]
    assert seed_spread_table(frame, [], files).empty  # by recipe alone: one seed twice, no spread to show


def test_the_headline_draws_one_line_per_family_with_its_seed_band():
    families = {f"a_s{i}": "a (seeds 0, 1, 2)" for i in range(3)}
    fig = headline_figure(seeded_frame(), families)
    try:
        (ax,) = fig.axes
        lines = [line for line in ax.lines if line.get_marker() == "o"]
        assert sorted(line.get_label() for line in lines) == ["conv2d_iso", "s4nd_iso"]  # the legend names models
        assert sorted(line.get_gid() for line in lines) == ["a (seeds 0, 1, 2)", "b"]  # one line per family
        mean = next(line for line in lines if line.get_gid().startswith("a"))
        assert list(mean.get_ydata()) == pytest.approx([64.0, 82.0])  # sizes 7, 14
        band = ax.collections[0].get_paths()[0].vertices[:, 1]
        assert min(band) == pytest.approx(60.0) and max(band) == pytest.approx(84.0)  # min-max over the seeds
    finally:
        plt.close(fig)


@pytest.mark.parametrize("draw", ["heatmap", "accuracy", "headline"])
def test_a_figure_note_covers_no_label(draw):
    frame = seeded_frame()
    fig = {"heatmap": train_test_heatmaps, "accuracy": accuracy_vs_test_res,
           "headline": lambda f: headline_figure(f, {})}[draw](frame)
    try:
        add_footnote(fig, "[\u00a7SUBSET: 60 images per cell]: SUBSET: cells use the first 60 of 10000 test images: "
                          "a quick look, not the full study (95% intervals about +-12.7 points at worst)")
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        note = next(t for t in texts if "SUBSET" in t.get_text())
        box = note.get_window_extent(renderer)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y0 >= fig.bbox.y0  # inside the image
        for t in texts:
            if t is not note:
                assert not box.overlaps(t.get_window_extent(renderer)), t.get_text()
    finally:
        plt.close(fig)


@pytest.mark.parametrize("resized, shown", [(0.62, False), (0.75, True)])
def test_best_setting_is_named_only_where_its_gain_is_beyond_the_noise(resized, shown):
    """At 7 the reference (native) scores 0.60 on 300 images; resize-input 0.62 is within the noise (the gain's
    95% interval holds zero: blank), 0.75 is not (named, with its gain and interval)."""
    cells = grid("c", "conv2d_iso", 14, [7, 14], accuracy=lambda s, p, b: 0.8 if s == "14" else
                 (0.60 if p == "native" else resized))
    table = summary_table(results_frame(cells), {}).set_index("model")
    best = table.loc["c", "best below"] if "best below" in table else ""
    if shown:
        assert re.fullmatch(r"resize-input, none \(\+15\.0 \[\+\d+\.\d, \+\d+\.\d\]\)", best), best
        low, high = (float(v) for v in re.findall(r"\+(\d+\.\d)", best)[1:])
        assert 0 < low < 15 < high
    else:
        assert best == ""


def test_each_summary_row_names_the_training_budget_it_had():
    frame = seeded_frame()
    frame["recipe"] = frame["checkpoint"].map(lambda name: "14:3" if name == "b" else "14:8")
    table = summary_table(frame, {f"a_s{i}": "a_s0 (seeds 0, 1, 2)" for i in range(3)}).set_index("model")
    assert table.loc["b", "training"] == "14:3" and table.loc["a_s0 (seeds 0, 1, 2)", "training"] == "14:8"
    assert list(table.columns[:3]) == ["train_res", "training", "native %"]
    assert "training" not in summary_table(frame.drop(columns=["recipe"]), {})  # no recipe recorded: no empty column


def many_families() -> tuple[pd.DataFrame, dict[str, str]]:
    """Five S4ND recipes or arms at 14 (seeds of the plain recipe, an unmasked arm, a random-mask arm, a longer
    recipe, one unmasked file), and five Conv2D recipes (plain for 3 and 8 epochs, multi-scale, progressive,
    blur-pooled): 28 checkpoints."""
    specs = [("s4nd_iso_14_seed{}", "s4nd_iso", "14:8", 0.5, 3), ("ablation/s4nd_iso_14_nomask_seed{}", "s4nd_iso",
             "14:8", None, 3), ("ablation/s4nd_iso_14_randmask_seed{}", "s4nd_iso", "14:8 mask=random", 0.5, 3),
             ("s4nd_iso_14_long_seed{}", "s4nd_iso", "14:20 dropout=0", 0.5, 3),
             ("s4nd_iso_14_nobandlimit", "s4nd_iso", "14:8", None, 1), ("conv2d_iso_14_seed{}", "conv2d_iso", "14:3",
             None, 3), ("baselines/conv2d_iso_14_multiscale_seed{}", "conv2d_iso", "14:3 multiscale=7,9,11,14", None,
             3), ("baselines/conv2d_blurpool_14_seed{}", "conv2d_blurpool", "14:3", None, 3),
             ("conv2d_iso_14_prog_seed{}", "conv2d_iso", "7:1,14:2", None, 3),
             ("conv2d_iso_14_8ep_seed{}", "conv2d_iso", "14:8", None, 3)]
    frames, families = [], {}
    for pattern, model, recipe, trained, seeds in specs:
        names = [pattern.format(s) for s in range(seeds)]
        for name in names:
            families[name] = f"{names[0]} (seeds 0-{seeds - 1})" if seeds > 1 else name
            cells = grid(name, model, 14, [7, 14, 28], policies=("native",), bandlimits=(
                "on" if trained else "none",), accuracy=lambda s, p, b: 0.8 if s == "14" else 0.5)
            frame = results_frame(cells)
            frames.append(frame.assign(recipe=recipe, trained_bandlimit=trained))
    return pd.concat(frames, ignore_index=True), families


def test_the_headline_draws_one_family_per_model_and_kind_of_training_and_says_how_many_it_left_out():
    frame, families = many_families()
    fig = headline_figure(frame, families)
    try:
        (ax,) = fig.axes
        drawn = sorted(line.get_gid() for line in ax.lines if line.get_marker() == "o")
        labels = sorted(line.get_label() for line in ax.lines if line.get_marker() == "o")
        assert labels == sorted(["s4nd_iso", "conv2d_iso", "conv2d_iso (multi-scale)", "conv2d_blurpool",
                                 "conv2d_iso (progressive)"])  # the legend names the model and kind of each line
        # s4nd_iso fixed: the seeded plain recipe (three members, no override, masked, shortest name) beats the
        # arms and the longer recipe with an override; conv2d_iso: one fixed (the longer-trained of the two plain
        # recipes), one multi-scale, one progressive; one blur-pooled
        assert drawn == sorted(["s4nd_iso_14_seed0 (seeds 0-2)", "conv2d_iso_14_8ep_seed0 (seeds 0-2)",
                                "baselines/conv2d_iso_14_multiscale_seed0 (seeds 0-2)",
                                "baselines/conv2d_blurpool_14_seed0 (seeds 0-2)", "conv2d_iso_14_prog_seed0 (seeds 0-2)"])
        title = fig._suptitle.get_text().replace("\n", " ")
        assert "5 other recipes or arms" in title  # nomask, randmask, long, the unmasked file, Conv2D for 3 epochs
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box = fig._suptitle.get_window_extent(renderer)
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
        legend = fig.legends[0].get_window_extent(renderer)
        assert fig.bbox.y0 <= legend.y0 and legend.y1 <= fig.bbox.y1 and not box.overlaps(legend)
        assert texts_overlapping(fig) == []
    finally:
        plt.close(fig)


def texts_overlapping(fig) -> list[tuple[str, str]]:
    """Pairs of visible texts of `fig` whose boxes overlap, and texts that leave the image (paired with ''); two
    tick labels meeting at an axes' corner are matplotlib's own layout, not counted."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ticks = {id(t) for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()}
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    boxes = [(t, t.get_window_extent(renderer)) for t in texts]
    bad = [(t.get_text(), "") for t, box in boxes if not (fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1
                                                          and fig.bbox.y0 - 1 <= box.y0 and box.y1 <= fig.bbox.y1 + 1)]
    return bad + [(a.get_text(), b.get_text()) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:]
                  if box.overlaps(other) and not (id(a) in ticks and id(b) in ticks)]


@pytest.mark.parametrize("panels", [1, 2, 3])
def test_the_accuracy_figure_of_many_checkpoints_has_no_text_over_another(panels):
    """28 checkpoints a panel (the full study has as many): each panel's legend beside it, no legend entry over
    an axis label, the SUBSET note over nothing, every checkpoint of a panel told apart by colour and marker."""
    frame, _ = many_families()
    frame = pd.concat([frame.assign(train_res=str(t), checkpoint=frame["checkpoint"] + f"@{t}",
                                    test_res=frame["test_res"].map(lambda s, t=t: str(int(s) * t // 14)))
                       for t in (14, 7, 28)[:panels]], ignore_index=True)
    fig = accuracy_vs_test_res(frame)
    try:
        add_footnote(fig, "[\u00a7SUBSET: 60 images per cell]: SUBSET: cells use the first 60 of 10000 test images")
        assert texts_overlapping(fig) == []
        for ax in fig.axes:
            lines = [line for line in ax.lines if line.get_label() and not line.get_label().startswith("_")]
            if lines:
                assert len({(line.get_color(), line.get_marker()) for line in lines}) == len(lines) == 28
    finally:
        plt.close(fig)


def test_a_long_summary_leads_with_the_headline_models_and_every_row_follows_the_headline(tmp_path):
    """24 checkpoints (four variants of two models at three training sizes): page 1 holds the scope, the summary
    of the six models the headline draws and the headline; all 24 rows come right after the headline."""
    cells = []
    for train in (7, 14, 28):
        for variant in range(4):
            cells += grid(f"s4nd_iso_{train}_v{variant}", "s4nd_iso", train, [7, 14, 28], bandlimits=("on", "off"),
                          accuracy=lambda s, p, b, t=train, v=variant: 0.85 - 0.01 * v if s == str(t) else 0.6)
            cells += grid(f"conv2d_iso_{train}_v{variant}", "conv2d_iso", train, [7, 14, 28],
                          accuracy=lambda s, p, b, t=train: 0.85 if s == str(t) else 0.3)
    out = tmp_path / "report" / "long"
    result = write_report([synthetic_sweep(tmp_path / "sweep", cells)], out, ["md", "pdf"])
    assert result["pages"][0][:4] == ["title", "scope", SUMMARY_TITLE, "headline"]
    md = out.with_suffix(".md").read_text()
    titles = HEADINGS["md"].findall(md)
    assert titles[1].startswith(SUMMARY_TITLE.split(" (")[0]) and titles[2].startswith(HEADLINE_TITLE.split(" (")[0])
    assert titles[3].startswith(FULL_SUMMARY_TITLE.split(" (")[0])
    lead = [row for row in md_section(md, titles[1]) if row.startswith("| ") and "_v" in row]
    assert sorted(row.split("|")[1].strip(" `") for row in lead) == sorted(
        f"{m}_{t}_v0" for m in ("s4nd_iso", "conv2d_iso") for t in (7, 14, 28))
    assert "18 more, with intervals" in md[md.index(titles[1]):md.index(titles[2])]
    assert not any("[" in row for row in lead)  # short cells: the intervals are in the full summary
    full = [row for row in md_section(md, titles[3]) if row.startswith("| ") and "_v" in row]
    assert len(full) == 24


def test_an_image_report_tests_the_goals_of_s4nd_against_its_twin(small):
    """The two tiny checkpoints trained at 14 with per-image records: the goal table at 7 and 28, each tested."""
    from resbench.report.goals import GOAL_TITLE

    out, result, _ = small
    goals = result["tables"][GOAL_TITLE].set_index("change")
    assert list(goals.index) == ["resolution x1/2", "resolution x2"]
    assert list(goals["test_res"]) == ["7", "28"]
    assert set(goals["S4ND within 2"]) <= {"shown", "not shown"}  # tested on the records, not left untested
    assert f"## {GOAL_TITLE}" in out.with_suffix(".md").read_text()


def test_the_capped_rule_has_a_table_of_its_effect_below_training_and_unswept_rules_have_none():
    from resbench.report import report_tables
    from resbench.report.tables import CAPPED_TITLE

    def accuracy(size, policy, bandlimit):
        return {"7": {"on": 0.60, "off": 0.40, "capped": 0.70}, "10": {"on": 0.80, "off": 0.75, "capped": 0.80}}.get(
            size, {"on": 0.90, "off": 0.85, "capped": 0.90})[bandlimit]

    cells = [c for c in grid("s", "s4nd_iso", 14, [7, 10, 14, 28], bandlimits=("on", "off", "capped"),
                             policies=("native",), accuracy=accuracy)
             if c[5] != "capped" or int(c[3]) < 14]  # the sweep runs capped only below training
    tables = report_tables(results_frame(cells))
    capped = tables[CAPPED_TITLE].set_index("checkpoint")
    assert list(capped.columns) == ["train_res", "7", "10"]  # sizes below training only
    low, high = (float(v) for v in re.findall(r"[+-]\d+\.\d", capped.loc["s", "7"])[1:])
    assert capped.loc["s", "7"].startswith("+10.0 [") and 0 < low < 10 < high
    assert capped.loc["s", "10"].startswith("+0.0 [")
    assert not any(title.startswith("Adaptive") for title in tables)  # no adaptive cell swept: no table
    assert CAPPED_TITLE not in report_tables(results_frame([c for c in cells if c[5] != "capped"]))
