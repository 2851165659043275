"""The Advanced panel's diagnostics for the last question: numbers and the energy chart, from one DiagnosticsView.

Defined once, shown the same way in text and chart:
- Candidates: passages the Hopfield reader weighed, the union of the dense top-K and the lexical
  top-K (so K to 2K; the K setting is per view).
- Steps: Hopfield updates applied; step 1 is the first update from the question's evidence. The
  chart has one point per step, numbered 1..Steps.
- Attention entropy: of the final attention over the candidates, in nats; 0 means all weight on
  one passage, ln(Candidates) a uniform mix.
"""

from __future__ import annotations

import streamlit as st

from ui.app.render import md_escape
from ui.app.turns import DiagnosticsView, TurnView


def energy_points(d: DiagnosticsView) -> list[dict[str, float]]:
    """Chart rows {"step": 1.., "energy"}: finite energies only (None marks a value the model could not compute)."""
    return [{"step": i, "energy": e} for i, e in enumerate(d.energy, start=1) if e is not None]


def energy_chart(points: list[dict[str, float]]):
    """Energy per update step (unitless, the Hopfield energy E); the y domain is set from the values, so
    Vega never derives an extent from empty or non-finite data."""
    import altair as alt

    values = [p["energy"] for p in points]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.1, 1e-3)
    return (
        alt.Chart(alt.Data(values=points))
        .mark_line(point=True)
        .encode(
            x=alt.X("step:O", title="update step"),
            y=alt.Y("energy:Q", scale=alt.Scale(zero=False, domain=[lo - pad, hi + pad]), title="energy"),
            tooltip=["step:O", alt.Tooltip("energy:Q", format=".4f")],
        )
        .properties(height=170)
    )


def render_diagnostics(box, turn: TurnView | None) -> None:
    """The last question's timing, evidence and (hopfield only) the reader's state, in box."""
    with box:
        st.markdown("**Last question**")
        if turn is None or turn.error:
            st.caption("Ask a question to see the reader's diagnostics.")
            return
        st.caption(f"{turn.retriever} · retrieval {turn.search_seconds * 1000:.0f} ms · answer {turn.seconds * 1000:.0f} ms")
        c1, c2 = st.columns(2)
        c1.metric("Evidence", f"{turn.evidence:.2f}")
        c2.metric("Threshold", f"{turn.threshold:.2f}")
        d = turn.diagnostics
        if d is None:
            st.caption(f"The {turn.retriever} retriever has no Hopfield diagnostics; choose hopfield to see them.")
            return
        c1, c2 = st.columns(2)
        c1.metric(
            "Candidates",
            d.candidates,
            help=f"Passages the reader weighed: dense top-K ∪ lexical top-K with K = {d.k}, so between {d.k} and {2 * d.k}.",
        )
        c2.metric(
            "Steps",
            d.steps,
            help="Hopfield updates applied; step 1 is the first update from the "
            "question's evidence. The chart has one point per step.",
        )
        c1.metric(
            "Attention entropy",
            f"{d.entropy:.3f}",
            help=f"Of the final attention over the {d.candidates} candidates, in nats: 0 = all weight on one "
            f"passage, ln {d.candidates} = {d.max_entropy:.2f} = uniform.",
        )
        c2.metric("Converged", "yes" if d.converged else "no", help="yes: the state stopped moving before the step limit.")
        st.caption(
            f"beta {d.beta:g}; K = {d.k} per view; entropy {d.entropy:.3f} of at most {d.max_entropy:.2f} "
            "nats" + (" (the attention settled on one passage)" if d.entropy < 0.005 else "")
        )
        for line in d.memory:  # the question memory: earlier questions confirmed to be answered by a passage
            st.caption(md_escape(line))
        points = energy_points(d)
        if points:
            st.caption(f"Energy after each of the {d.steps} update steps")
            st.altair_chart(energy_chart(points), width="stretch")
        if len(points) < len(d.energy):
            st.caption(f"{len(d.energy) - len(points)} energy value(s) were not finite and are not plotted.")
