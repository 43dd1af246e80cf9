"""Records -> a PNG: compare's speedups and GIL waits against workers, and the atomic
PNG writer every command's plot goes through (convoy's, the timeline's). Never measures."""
from __future__ import annotations

from gillab.compare.report import _several_methods, cell_label, format_env_line
from gillab.core.registry import spec

__all__ = ["write_plot", "save_figure"]


def write_plot(run, path: str) -> None:
    """A PNG: per kernel, speedup against workers with the ideal line (top row) and
    GIL wait / GIL held against workers (bottom row).

    matplotlib is an optional extra; the caller checks it is there before measuring.
    Written to a temporary file and renamed, like the JSON.
    """

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list] = {}
    for cell in run.cells:
        groups.setdefault(cell.kernel, []).append(cell)
    n_cols = len(groups)
    fig, axes = plt.subplots(2, n_cols, figsize=(3.6 * n_cols, 6.6), squeeze=False,
                             sharex="col")
    show_method = _several_methods(run)
    colors = {}
    for col, (name, cells) in enumerate(groups.items()):
        top, bottom = axes[0][col], axes[1][col]
        ideal = {c.workers: c.ideal for c in cells if c.ideal is not None}
        if ideal:
            top.plot(sorted(ideal), [ideal[w] for w in sorted(ideal)], "k--", lw=1,
                     label="ideal")
        for label in dict.fromkeys(cell_label(c, show_method) for c in cells
                                   if not spec(c.executor).baseline):
            mine = sorted((c for c in cells if cell_label(c, show_method) == label),
                          key=lambda c: c.workers)
            color = colors.setdefault(label, f"C{len(colors) % 10}")
            _plot_speedups(top, mine, color, label)
            wait = [(c.workers, c.gil_wait) for c in mine if c.gil_wait is not None]
            if wait and not mine[0].io_bound:  # a wait is off-CPU by design, not GIL wait
                bottom.plot(*zip(*wait), marker="o", color=color)
            held = [(c.workers, c.gil_held) for c in mine if c.gil_held is not None]
            if held:
                bottom.plot(*zip(*held), marker="x", ls=":", color=color)
        top.set_title(name)
        top.set_ylim(bottom=0)
        bottom.set_ylim(-0.02, 1.02)
        bottom.set_xlabel("workers")
        bottom.set_xticks(sorted({c.workers for c in cells}))
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("speedup (k x T1 / T)\nbar: spread of the pairs;\n"
                          "red square: not backed by CPU")
    axes[1][0].set_ylabel("GIL wait (o, solid)\nGIL held (x, dotted)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"gillab compare — {format_env_line(run.env)}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _plot_speedups(ax, cells, color, label) -> None:
    """One executor's speedups against workers: a line through the medians, a bar over
    the spread of each cell's pairs, and a hollow square on every speedup the cores do
    not back (the baseline ran slow, not the cell fast)."""
    speed = [c for c in cells if c.speedup is not None]
    if not speed:
        return
    ax.plot([c.workers for c in speed], [c.speedup for c in speed], marker="o",
            color=color, label=label)
    for c in speed:
        if len(c.speedup_all) > 1:
            ax.vlines(c.workers, min(c.speedup_all), max(c.speedup_all), color=color,
                      lw=3, alpha=0.35)
    unbacked = [c for c in speed if c.unbacked]
    if unbacked:
        ax.plot([c.workers for c in unbacked], [c.speedup for c in unbacked], ls="none",
                marker="s", ms=11, mfc="none", mec="red", mew=1.5)


def save_figure(fig, path: str, **savefig_kwargs) -> None:
    """Write a matplotlib figure as PNG to a temporary file beside ``path`` and rename it
    into place (an interrupted run never leaves half a picture), then close it."""
    import os
    import tempfile

    import matplotlib.pyplot as plt

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".gillab-", suffix=".png", dir=directory)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", **savefig_kwargs)
        os.chmod(tmp, 0o644)  # mkstemp made it private; a picture is for sharing
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        plt.close(fig)
