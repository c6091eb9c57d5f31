"""What every view shares: figures shown as PNGs in an Output, errors shown in a box and kept."""

from __future__ import annotations

import base64
import html
import io
import traceback
from contextlib import contextmanager

import ipywidgets as widgets
from matplotlib.figure import Figure

__all__ = ["View", "new_figure", "figure_output", "message_output"]


def new_figure(width: float, height: float) -> Figure:
    """A figure outside pyplot: never shown twice by the inline backend, freed with the view, no leak."""
    return Figure(figsize=(width, height), layout="constrained")


def figure_output(fig: Figure, *, dpi: int = 96) -> dict:
    """The figure as one ``display_data`` output (PNG), the same in a kernel and in a unit test."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
                     "text/plain": f"<Figure: {' | '.join(titles) or 'untitled'}>"}}


def message_output(text: str, *, busy: bool = False) -> dict:
    """One line of text as a ``display_data`` output: what an output area says instead of a figure."""
    style = "color:#555;font-style:italic;padding:8px 4px" if busy else "color:#333;padding:8px 4px"
    mark = "⏳ " if busy else ""
    return {"output_type": "display_data", "metadata": {},
            "data": {"text/html": f'<div class="m2v-message" style="{style}">{mark}{html.escape(text)}</div>',
                     "text/plain": text}}


class View(widgets.VBox):
    """Base of the m2v_lab views.

    Attributes
    ----------
    error_box : ipywidgets.HTML
        Hidden until a callback fails; then it shows the error and its traceback.
    last_error : Exception or None
        The exception behind the box (None once an action succeeds again).
    figures : dict of str to matplotlib Figure
        The last figure drawn into each output, by name (its axes, titles and artists can be inspected).
    renders : dict of str to int
        How many times each output was drawn.
    """

    def __init__(self, children, *, css_class: str):
        self.error_box = widgets.HTML(layout=widgets.Layout(display="none"))
        self.error_box.add_class("m2v-error")
        self.last_error: Exception | None = None
        self._depth = 0
        self.figures: dict[str, Figure] = {}
        self.renders: dict[str, int] = {}
        super().__init__(children=[self.error_box, *children])
        self.add_class("m2v-view")
        self.add_class(css_class)

    # -- errors -------------------------------------------------------------------
    @contextmanager
    def reporting(self, action: str):
        """Run a step of a callback: an exception is shown in :attr:`error_box`, kept in
        :attr:`last_error`, and stops the step, not the kernel's event loop.

        A new user action clears the previous error; steps nested in it (callbacks fired by
        its own changes) do not, so an inner failure stays visible.
        """
        if self._depth == 0:
            self.clear_error()
        self._depth += 1
        try:
            yield
        except Exception as exc:  # a widget callback has no caller to raise to: show it instead
            self.show_error(action, exc)
        finally:
            self._depth -= 1

    def show_error(self, action: str, exc: Exception):
        self.last_error = exc
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.error_box.value = (
            '<div style="border:2px solid #c62828;background:#fdecea;color:#611a15;padding:6px 10px;'
            f'border-radius:4px"><b>Error while {html.escape(action)}:</b> {html.escape(type(exc).__name__)}: '
            f'{html.escape(str(exc))}<details><summary>traceback</summary><pre style="font-size:11px">'
            f'{html.escape(trace)}</pre></details></div>')
        self.error_box.layout.display = None

    def clear_error(self):
        if self.last_error is not None:
            self.last_error = None
            self.error_box.value = ""
            self.error_box.layout.display = "none"

    def watch(self, control, action: str, handler, names="value"):
        """Call ``handler()`` when ``control``'s ``names`` trait changes, reporting errors."""
        def callback(_change):
            with self.reporting(action):
                handler()
        control.observe(callback, names=names)

    # -- output ---------------------------------------------------------------------
    def show_figure(self, output: widgets.Output, fig: Figure, *, name: str):
        """Replace what ``output`` shows with ``fig``."""
        output.outputs = (figure_output(fig),)
        self.figures[name] = fig
        self.renders[name] = self.renders.get(name, 0) + 1

    def show_message(self, output: widgets.Output, text: str, *, busy: bool = False):
        """Replace what ``output`` shows with one line of text (``busy``: work is under way): a figure
        that no longer matches the controls is never left showing."""
        output.outputs = (message_output(text, busy=busy),)
