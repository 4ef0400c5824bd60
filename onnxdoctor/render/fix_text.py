"""The human report of `onnxdoctor fix`: one line per pass, then findings before → after."""

from __future__ import annotations

from rich.console import Console

from onnxdoctor.catalog import load_catalog
from onnxdoctor.render.json import fix_record_tolerances, rule_counts_before_after, verified_at
from onnxdoctor.render.text import shown
from onnxdoctor.report import StepStatus
from onnxdoctor.verify import PROVED_SAME_ON_THESE_INPUTS

_STATUS_STYLES = {StepStatus.APPLIED: "green", StepStatus.ROLLED_BACK: "bold red", StepStatus.REFUSED: "yellow",
                  StepStatus.UNVERIFIED: "yellow"}


def _error_columns(step) -> str:
    verification = step.verification
    notes = "".join(f"  [yellow]{shown(note)}[/yellow]" for note in step.notes)
    if verification is None:
        return notes
    if verification.error:
        return f"  [red]{shown(verification.error)}[/red]"
    if verification.proof:
        return "  same computation" + notes
    worst_absolute = max((o.max_absolute for o in verification.outputs), default=0.0)
    worst_relative = max((o.max_relative for o in verification.outputs), default=0.0)
    failed = [o.name for o in verification.outputs if not o.passed]
    # Outputs that were not compared (empty, or NaN throughout) are named in the step's notes.
    text = f"  max abs {worst_absolute:.3g}, max rel {worst_relative:.3g}"
    return text + (f" [red](differs: {shown(', '.join(failed))})[/red]" if failed else "") + notes


def _how_verified(report, inputs: str) -> str:
    """The header's line on verification: run and compared on these inputs, or proved (verify.Verifier.prove)."""
    verifications = [step.verification for step in report.steps if step.verification is not None]
    together = next((verification.passes for verification in verifications if verification.passes), ())
    at_once = f"; the {len(together)} changed passes in one run" if len(together) > 1 else ""
    if verifications and all(verification.proof for verification in verifications):
        on_inputs = any(verification.proof == PROVED_SAME_ON_THESE_INPUTS for verification in verifications)
        return ("proved without running the fixed model: it computes every output with the original's operations "
                "on the original's constants"
                + (f", the folded ones as the original computed them on {shown(inputs)} ({report.verified_on})"
                   if on_inputs else "")
                + "; ONNX Runtime loads it" + at_once.replace("in one run", "at once"))
    proved = [verification for verification in verifications if verification.proof]
    return (f"verified on {shown(inputs)} ({report.verified_on}); {verified_at(fix_record_tolerances(report))}"
            + at_once + (f"; {len(proved)} passes proved the same computation" if proved else ""))


def render(report, console: Console) -> None:
    target = f" → {report.output}" if report.output else " (dry run, nothing written)"
    console.print(f"[bold]{shown(report.model)}[/bold]{shown(target)}")
    inputs = ", ".join(f"{name} {'x'.join(map(str, shape)) or 'scalar'}" for name, shape in report.inputs.items())
    if report.unverified_reason:
        console.print(f"  [yellow]not verified: {shown(report.unverified_reason)}[/yellow]", soft_wrap=True)
    else:
        console.print(f"  [dim]{_how_verified(report, inputs)}[/dim]", soft_wrap=True)
    width = max(len(step.name) for step in report.steps) if report.steps else 0
    for step in report.steps:
        style = _STATUS_STYLES.get(step.status, "dim")
        resolves = ",".join(step.resolves) or "-"
        console.print(
            f"  {step.name:<{width}}  {resolves:<6}  [{style}]{step.status:<14}[/{style}] {shown(step.summary)}"
            + _error_columns(step),
            soft_wrap=True,
        )
    catalog = load_catalog()
    counts = rule_counts_before_after(report)
    if counts:
        console.print("  [bold]findings before → after[/bold]")
        for code, (before, after) in counts.items():
            style = "green" if after < before else ("red" if after > before else "dim")
            console.print(f"    {code} {catalog[code].name:<26} {before} → [{style}]{after}[/{style}]")
    else:
        console.print("  [green]no findings before or after[/green]")
