"""The confirmation modal: what a person decides on first (environment, hosts, from what to what,
builds, restarts); the exact commands one key away (`v`); the typed name when protected."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from opsconsole.actions.base import MARKERS, Action, Plan
from opsconsole.sanitize import clean


def plan_text(plan: Plan) -> Text:
    """Every exact command, call and request, per host."""
    text = Text()
    for host, step in plan.step_lines():
        if step is None:
            text.append(f"{clean(host)}\n", style="bold underline")
            continue
        text.append(f"  {MARKERS[step.kind]} ", style="dim")
        text.append(clean(step.text, 2000) + "\n", style="italic dim" if step.kind == "note" else "")
    return text


def summary_text(plan: Plan) -> Text:
    text = Text()
    for line in plan.summary_lines:
        indent = len(line) - len(line.lstrip(" "))
        text.append(" " * indent + clean(line.lstrip(" "), 2000) + "\n", style="" if indent else "bold")
    text.append("\nv shows the exact commands", style="dim")
    return text


class ConfirmScreen(ModalScreen[str | None]):
    """Returns the confirmation (the typed environment name, or "yes"), or None when cancelled."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 110; max-width: 98%; height: 90%; border: thick $warning; background: $surface; padding: 0 1; }
    ConfirmScreen.-destructive > Vertical { border: thick $error; }
    ConfirmScreen #title { text-style: bold; }
    ConfirmScreen #destructive { color: $error; text-style: bold; }
    ConfirmScreen #plan { height: 1fr; border: round $panel-lighten-2; }
    ConfirmScreen #buttons { height: 3; align: right middle; }
    ConfirmScreen #why { color: $text-muted; height: auto; }
    ConfirmScreen Input { margin: 0 0 1 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="confirm_cancel", tooltip="Cancel: nothing is changed"),
        Binding("v", "toggle_commands", "Commands", id="confirm_commands", tooltip="Show the exact commands"),
    ]

    def __init__(self, action: Action, plan: Plan, confirmation: str | None = None) -> None:
        from opsconsole.actions.runner import confirmation_for

        super().__init__()
        self.action_obj = action
        self.plan = plan
        self.protected = (confirmation or confirmation_for(action)) == "typed"
        self.showing_commands = False
        self.answered = False

    def compose(self) -> ComposeResult:
        env = self.action_obj.env
        with Vertical():
            yield Label(
                Text(f"{clean(self.action_obj.headline)} in {env.name}"),
                id="title",
            )
            if self.action_obj.destructive:
                yield Label(
                    Text("DESTRUCTIVE: this stops, removes or replaces something running"), id="destructive"
                )
            with VerticalScroll(id="plan"):
                yield Static(summary_text(self.plan), id="plan-text")
            if self.protected:
                yield Label(Text(f"{env.name} is protected. Type its name to confirm:"))
                yield Input(placeholder=f"type {env.name} here", id="typed")
                yield Static(
                    Text(f"Run stays disabled until the text above is exactly '{env.name}'"), id="why"
                )
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(
                    "Run" if not self.action_obj.destructive else "Run (destructive)",
                    id="run",
                    variant="error" if self.action_obj.destructive else "warning",
                    disabled=self.protected,
                )

    def on_mount(self) -> None:
        self.set_class(self.action_obj.destructive, "-destructive")
        if self.protected:
            self.query_one("#typed", Input).focus()
        else:
            self.query_one("#cancel", Button).focus()

    def update_plan(self, plan: Plan) -> bool:
        """The plan filled in (what goes out, read from the mirror while it was on screen): the
        same steps, a fuller summary; the one approved is the one shown last. False once answered:
        the plan answered about stays."""
        if self.answered or not self.is_attached:
            return False
        self.plan = plan
        text = plan_text(plan) if self.showing_commands else summary_text(plan)
        self.query_one("#plan-text", Static).update(text)
        return True

    def dismiss(self, result: str | None = None) -> Any:
        self.answered = True  # from here on the plan is not replaced (update_plan)
        return super().dismiss(result)

    def action_toggle_commands(self) -> None:
        if self.protected and self.query_one("#typed", Input).has_focus:
            return  # `v` is a letter of the name being typed
        self.showing_commands = not self.showing_commands
        text = plan_text(self.plan) if self.showing_commands else summary_text(self.plan)
        self.query_one("#plan-text", Static).update(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_commands" and self.protected and self.query_one("#typed", Input).has_focus:
            return False  # let the Input take the letter
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        name = self.action_obj.env.name
        ok = event.value == name
        self.query_one("#run", Button).disabled = not ok
        why = self.query_one("#why", Static)
        if ok:
            why.update(Text("press Enter or Run", style="bold"))
        elif event.value and not name.startswith(event.value):
            why.update(Text(f"'{clean(event.value, 60)}' is not '{name}': Run stays disabled", style="red"))
        else:
            why.update(Text(f"Run stays disabled until the text above is exactly '{name}'"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value == self.action_obj.env.name:
            self.dismiss(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.dismiss(self.action_obj.env.name if self.protected else "yes")
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
