"""gradrepl's app: code input, transcript, tensor inspector, backward log and status line,
with the kernel in its own process."""

from __future__ import annotations

import asyncio
import gc
import importlib
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events, on, work
from textual.actions import SkipAction
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.filter import LineFilter
from textual.screen import Screen
from textual.widgets import Footer

from gradrepl.client.process import KernelProcess
from gradrepl.protocol import NAN_CHECK_ENV, SANDBOX_ENV
from gradrepl.ui.messages import CellDone, CellOutput, CellStarted, KernelLink, KernelNotes, KernelStateChanged
from gradrepl.ui.readable_text import ReadableText
from gradrepl.ui.runner import STOPPED_BY_RESTART, KernelRunner
from gradrepl.ui.state.config import Settings
from gradrepl.ui.state.finiteness import FiniteHistory
from gradrepl.ui.state.health import HealthWatch
from gradrepl.ui.state.history import History, default_path
from gradrepl.ui.state.journal import Journal
from gradrepl.ui.state.journal import default_dir as journal_dir
from gradrepl.ui.state.worksheet import SessionCell, Worksheet
from gradrepl.ui.theming import apply_remembered_theme
from gradrepl.ui.widgets.code_input import CodeInput
from gradrepl.ui.widgets.recover_offer import RecoverOffer
from gradrepl.ui.widgets.status_line import StatusLine

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel
    from textual.widgets import OptionList

    from gradrepl.cells import Script
    from gradrepl.protocol import TensorInfo
    from gradrepl.ui.restarting import Replay
    from gradrepl.ui.runner import SessionFactory
    from gradrepl.ui.widgets.backward_log import BackwardLog
    from gradrepl.ui.widgets.inspector import TensorInspector
    from gradrepl.ui.widgets.transcript import Transcript


PANES = Binding.Group("Panes", compact=False)
PANES_DEFER = 0.15  # seconds after the footer's keys: they get drawn first
STARTUP_DEFER = 0.1  # seconds
STABLE_TOAST_SECONDS = 600


class GradReplApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "gradrepl"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # app.tcss: a narrow footer drops the Panes group
    BINDINGS = [
        Binding("ctrl+c", "interrupt", "Interrupt", tooltip="Interrupt the running cell; else copy, or clear the input",
                priority=True),
        Binding("ctrl+s", "save", "Save", tooltip="Save the session's cells as a # %% script", priority=True),
        Binding("f1", "help", "Help", tooltip="Every key and pane"),
        Binding("f2", "focus_pane('inspector')", "Tensors", tooltip="Go to the tensor inspector", group=PANES),
        Binding("f3", "focus_pane('backward-log')", "Backward log", tooltip="Go to the backward log", group=PANES),
        Binding("f4", "focus_pane('input')", "Input", tooltip="Go to the code input", group=PANES),
        Binding("f5", "focus_pane('transcript')", "Transcript", tooltip="Go to the transcript", group=PANES),
        Binding("f8", "restart_kernel", "Restart", tooltip="Restart the kernel (asks first when tensors are named)"),
        Binding("ctrl+l", "clear_transcript", "Clear", tooltip="Clear the transcript view (the cells are kept)",
                show=False),
        Binding("ctrl+end", "transcript_latest", "Latest output", tooltip="Show the transcript's latest output",
                show=False),
        Binding("ctrl+q", "quit", "Quit", tooltip="Quit (asks first when cells are unsaved)", priority=True),
        Binding("escape", "close_keys_panel", show=False, priority=True),  # the palette's Keys panel
    ]

    def __init__(
        self,
        script: Script | None = None,
        *,
        process: KernelProcess | None = None,
        history: History | None = None,
        cwd: Path | None = None,
        cell_timeout: float | None = None,
        stable: bool = False,
        journal: Journal | None = None,
        kernel_env: dict[str, str] | None = None,
        session_factory: SessionFactory | None = None,
        settings: Settings | None = None,
        freeze_start_up: bool = False,
        thresholds: tuple[float | None, float | None] = (None, None),  # --vanishing, --exploding
        sandbox_entries: dict[str, str] | None = None,  # the kernel environment --sandbox adds (None: no toggle)
    ) -> None:
        super().__init__()
        # The objects of start-up (modules, styles, widgets) leave the collector's full passes
        # once the kernel is first idle: a full pass over them took 60 ms, which a key typed
        # meanwhile waited. cli.py asks for it; in a test process it would keep earlier tests'
        # garbage forever.
        self.freeze_start_up = freeze_start_up
        self.settings = settings if settings is not None else Settings(None)  # cli.py passes the user's
        self.worksheet = Worksheet(script)
        self.journal = journal if journal is not None else Journal(journal_dir(), script.path if script else None)
        self.input_history = history if history is not None else History(default_path())
        self.stable = stable  # snapshot tests: no addresses, no cursor blink
        origin = str(script.path) if script is not None and script.path is not None else None
        self.runner = KernelRunner(
            self,
            cwd=cwd,
            process=process,
            cell_timeout=cell_timeout,
            origin_file=origin,
            env=kernel_env,
            session_factory=session_factory,  # None: a KernelSession over a kernel process
        )
        self.tensors: dict[str, TensorInfo] = {}
        self.resume_total = 0  # code cells of the script being resumed; 0 once they have all run
        self.panes_updated: list[float] = []  # seconds from a cell's end to all panes drawn
        self._panes_ready = False
        self._early: list[str] = []  # cells submitted before the panes were mounted
        self.kernel_first_cell = 0  # index in the worksheet of the first cell the current kernel ran
        self.nan_check = (kernel_env or {}).get(NAN_CHECK_ENV) == "1"
        self.sandbox_entries = sandbox_entries
        self.sandboxed = SANDBOX_ENV in (kernel_env or {})
        self.finiteness = FiniteHistory()
        self.health = HealthWatch(self.settings, *thresholds)
        self._readable_text = ReadableText()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        if self.stable:  # snapshot tests: a toast is in the picture however slow the machine is
            timeout = STABLE_TOAST_SECONDS
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def get_line_filters(self) -> Sequence[LineFilter]:
        return [*super().get_line_filters(), self._readable_text]

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        # The first frame holds what typing needs; the panes are mounted right after it.
        yield Horizontal(id="top")
        yield CodeInput(self.input_history, id="input")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.runner.launch()
        apply_remembered_theme(self)
        self.query_one(CodeInput).focus()
        self.query_one(StatusLine).path = self.path_label()
        self.query_one(StatusLine).sandboxed = self.sandboxed
        # The panes come once the footer has drawn its keys, which it does when the
        # screen first publishes its bindings.
        self.screen.bindings_updated_signal.subscribe(self, self._first_bindings)
        self.screen_change_signal.subscribe(self, self._screen_changed)

    def _screen_changed(self, screen: Screen) -> None:
        """gradrepl's dialogs get a footer of their own: the main screen's, showing through
        them, would list keys (g Graph) that do nothing there."""
        if screen is not self.screen_stack[0] and screen.__module__.startswith("gradrepl.") and not screen.query(Footer):
            screen.mount(Footer())

    def _first_bindings(self, screen: Screen) -> None:
        screen.bindings_updated_signal.unsubscribe(self)
        self.set_timer(PANES_DEFER, self._mount_panes)

    async def _mount_panes(self) -> None:
        from textual.widgets import OptionList

        from gradrepl.ui.widgets.backward_log import BackwardLog
        from gradrepl.ui.widgets.inspector import TensorInspector
        from gradrepl.ui.widgets.transcript import Transcript

        transcript = Transcript(stable=self.stable, id="transcript")
        transcript.border_title = "Transcript"
        await self.query_one("#top").mount(transcript, BackwardLog(id="backward-log"))
        code_input = self.query_one(CodeInput)
        completions = OptionList(id="completions")
        await self.mount(TensorInspector(id="inspector"), completions, before=code_input)
        code_input.completions = completions
        self._panes_ready = True
        if self.worksheet.script is not None:
            self._resume(self.worksheet.script)
        for source in self._early:
            self.submit(source)
        self._early.clear()
        await self._offer_left_over()
        # The kernel process is already loading (cli.py launched it); what is left here is
        # importing jupyter_client and IPython's input checker, which waits a moment so it
        # does not compete with drawing the panes.
        self.set_timer(STARTUP_DEFER, self._start_kernel)

    @property
    def transcript(self) -> Transcript:
        return self.query_one("#transcript")  # type: ignore[return-value]

    @property
    def backward_log(self) -> BackwardLog:
        return self.query_one("#backward-log")  # type: ignore[return-value]

    @property
    def inspector(self) -> TensorInspector:
        return self.query_one("#inspector")  # type: ignore[return-value]

    def path_label(self) -> str:
        script = self.worksheet.script
        path = self.worksheet.path or (script.path if script is not None else None)
        if path is None:
            return ""
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def _start_kernel(self) -> None:
        self.query_one(CodeInput).enable_highlighting()
        self._load_completeness_checker()
        self.run_worker(self.runner.start(), name="kernel", exclusive=True, group="kernel")

    @work(thread=True, group="checker")
    def _load_completeness_checker(self) -> None:
        module = importlib.import_module("IPython.core.inputtransformer2")
        manager = module.TransformerManager()
        self.call_from_thread(setattr, self.query_one(CodeInput), "check_complete", manager.check_complete)

    async def until_idle(self) -> None:
        """Wait until the kernel is up and every submitted cell has finished (tests, bench)."""
        await self.runner.until_idle()
        await asyncio.sleep(0)

    # ------------------------------------------------------------------ cells

    def _resume(self, script: Script) -> None:
        from gradrepl.ui.resuming import resume

        resume(self, script)

    def submit(self, source: str, *, script_line: int | None = None, rerun: bool = False) -> SessionCell:
        cell = self.worksheet.add(source, script_line, rerun=rerun)
        self.transcript.add_cell(cell)
        self.runner.submit(cell)
        return cell

    @on(CodeInput.Submitted)
    def _submitted(self, event: CodeInput.Submitted) -> None:
        if not self._panes_ready:
            self._early.append(event.source)
            return
        self.submit(event.source)
        if self.input_history.error:
            self.notify(self.input_history.error, severity="warning")
            self.input_history.error = None

    async def _offer_left_over(self) -> None:
        """The newest left-over journal, above the input; not a dialog: keys typed meanwhile
        stay the input's. Run again or Discard offers the next older one."""
        found = self.journal.left_overs()
        if found:
            await self.mount(RecoverOffer(found[0], older=len(found) - 1, id="recover"), before=self.query_one(CodeInput))

    @on(RecoverOffer.Chosen)
    async def _recover_chosen(self, event: RecoverOffer.Chosen) -> None:
        left = event.offer.left
        if event.choice == "run":
            for source in left.cells:
                self.submit(source)
            left.discard()  # this session's journal has them from now on
        elif event.choice == "discard":
            left.discard()
        self.query_one(CodeInput).focus()
        await event.offer.remove()
        if event.choice != "later":
            await self._offer_left_over()

    @on(CellStarted)
    def _cell_started(self, event: CellStarted) -> None:
        cell = event.cell
        if not cell.from_script and not cell.rerun:
            self.journal.cell_started(cell.source)
            if self.journal.error:
                self.notify(self.journal.error, severity="warning", timeout=8)
                self.journal.error = None
        self.transcript.update_prompt(event.cell)
        self.show_progress()

    @on(CellOutput)
    def _cell_output(self, event: CellOutput) -> None:
        self.transcript.add_event(event.cell, event.event)

    @on(CellDone)
    def _cell_done(self, event: CellDone) -> None:
        with self.batch_update():
            self._show_results(event.cell)
        received = event.received_at
        self.call_after_refresh(lambda: self.panes_updated.append(time.perf_counter() - received))

    def _show_results(self, cell: SessionCell) -> None:
        outcome = cell.outcome
        report = outcome.report
        notes = list(report.notes) if report is not None else []
        alerts = []
        if report is not None and report.nonfinite:
            from gradrepl.render.nonfinite_text import birth_lines

            alerts.append("\n".join(birth_lines(report.nonfinite)))
        if report is not None:
            alerts += self.health.lines(report.tensors)
        error = outcome.error
        explanation = None
        if error is not None:
            from gradrepl.render.explain import explain_report

            explanation = explain_report(error.ename, error.evalue, cell.execution_count, report)
        self.transcript.finish(cell, notes, explanation, alerts)
        if report is not None:
            tensors = {t.name: t for t in report.tensors}
            self.backward_log.add_cell(cell.execution_count, report.backward, self.tensors, tensors)
            self.inspector.show(tuple(tensors.values()))
            self.tensors = tensors
            self.finiteness.update(cell.execution_count, tensors)
        if cell.state == "died" and cell.reason != STOPPED_BY_RESTART:
            from gradrepl.ui.restarting import offer_restart

            offer_restart(self, cell)
        self.update_status()
        self.show_progress()

    def shown_name(self, cell: SessionCell) -> str:
        from gradrepl.ui.restarting import shown_name

        return shown_name(self, cell)

    def show_progress(self) -> None:
        from gradrepl.ui.resuming import show_progress

        show_progress(self)

    def update_status(self) -> None:
        status = self.query_one(StatusLine)
        status.cells_run = sum(1 for c in self.worksheet.cells if c.state not in ("queued", "running", "cancelled"))
        status.unsaved = self.worksheet.unsaved
        status.sandboxed = self.sandboxed

    @on(KernelLink)
    def _kernel_link(self, event: KernelLink) -> None:
        latency = f" {event.latency_ms:.0f} ms" if event.latency_ms is not None else ""
        self.query_one(StatusLine).link = f"on {event.where}{latency}"

    @on(KernelNotes)
    def _kernel_notes(self, event: KernelNotes) -> None:
        for note in event.notes:
            self.notify(note.removeprefix("gradrepl: "), severity="warning", timeout=10)

    @on(KernelStateChanged)
    def _kernel_state(self, event: KernelStateChanged) -> None:
        status = self.query_one(StatusLine)
        status.kernel_state = event.state
        status.kernel_reason = event.reason if event.state == "dead" else ""
        if event.state == "idle" and self.freeze_start_up:
            self.freeze_start_up = False
            gc.freeze()
        if event.state == "dead" and event.reason and not self.runner.running:
            self.notify(f"Kernel: {event.reason}", severity="error", timeout=10)

    # ------------------------------------------------------------ completion

    @on(CodeInput.CompletionWanted)
    async def _completion_wanted(self, event: CodeInput.CompletionWanted) -> None:
        self._complete(event.code, event.cursor)

    @work(group="complete", exclusive=True)
    async def _complete(self, code: str, cursor: int) -> None:
        answer = await self.runner.complete(code, cursor)
        code_input = self.query_one(CodeInput)
        if answer is None:
            self.notify("Completion is there when the kernel is idle.", severity="warning", timeout=3)
            return
        if code_input.text != code:
            return  # typed on meanwhile: the answer is stale
        code_input.show_completions(*answer)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id != "completions":
            return
        code_input = self.query_one(CodeInput)
        code_input.accept_completion(event.option.id)
        code_input.focus()

    # ------------------------------------------------------------ inspector

    def on_tensor_inspector_detail_wanted(self, event: TensorInspector.DetailWanted) -> None:
        from gradrepl.ui.screens.tensor_detail import TensorDetailScreen

        name = event.tensor.name

        def then(choice: str | None) -> None:
            if choice == "graph":
                self.show_graph(name)

        self.push_screen(TensorDetailScreen(event.tensor, self.finiteness), then)

    def on_tensor_inspector_graph_wanted(self, event: TensorInspector.GraphWanted) -> None:
        self.show_graph(event.name)

    def on_backward_log_event_wanted(self, event: BackwardLog.EventWanted) -> None:
        from gradrepl.ui.screens.backward_event import BackwardEventScreen

        self.push_screen(BackwardEventScreen(event.event))

    def show_graph(self, name: str) -> None:
        from gradrepl.ui.screens.autograd_graph import AutogradGraphScreen

        self.push_screen(AutogradGraphScreen(name, self.runner.graph))

    # ------------------------------------------------------------ keys

    def on_key(self, event: events.Key) -> None:
        """A printable key no pane took (the transcript, a fold's title, a backward entry)
        and no binding wants is typing: it goes to the input. Dialogs keep theirs."""
        if not event.is_printable or event.character is None or len(self.screen_stack) > 1:
            return
        code_input = self.query_one(CodeInput)
        if code_input.has_focus or event.key in self.screen.active_bindings:  # `g` in the inspector: its key
            return
        event.stop()
        self.screen.set_focus(code_input)  # now, not after the keys already queued behind this one
        code_input.insert(event.character)

    @on(CodeInput.ScrollWanted)
    def _scroll_transcript(self, event: CodeInput.ScrollWanted) -> None:
        if not self._panes_ready:
            return
        if event.pages < 0:
            self.transcript.scroll_page_up(animate=False)
        else:
            self.transcript.scroll_page_down(animate=False)

    @on(CodeInput.QuitWanted)
    async def _quit_wanted(self) -> None:
        await self.action_quit()

    # ------------------------------------------------------------ actions

    def action_help(self) -> None:
        from gradrepl.ui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_close_keys_panel(self) -> None:
        panels = self.screen.query("HelpPanel")
        if not panels:
            raise SkipAction()
        panels.remove()

    def action_focus_pane(self, pane: str) -> None:
        widget = self.query_one(f"#{pane}")
        widget.display = True
        if pane == "transcript" and self.transcript.focus_output():
            return
        widget.focus()

    def action_toggle_pane(self, pane: str) -> None:
        widget = self.query_one(f"#{pane}")
        widget.display = not widget.display
        if not widget.display and widget.has_focus:
            self.query_one(CodeInput).focus()

    async def action_interrupt(self) -> None:
        if self.runner.running is not None:
            await self.runner.interrupt()
            self.notify("Interrupt sent.", timeout=2)
            return
        focused = self.focused
        selected = self.screen.get_selected_text()
        if isinstance(focused, CodeInput) and focused.selected_text:
            selected = focused.selected_text
        if selected:
            self.copy_to_clipboard(selected)
            self.notify(f"Copied {len(selected.splitlines()) or 1} line(s).", timeout=2)
            return
        if isinstance(focused, CodeInput) and focused.text.strip():
            focused.action_clear_draft()
            return
        self.notify("Nothing is running. Ctrl+D or Ctrl+Q quits.", timeout=3)

    def action_run_all(self) -> None:
        cells = self.worksheet.runnable()
        if not cells:
            self.notify("No cells to run yet.", timeout=3)
            return
        for source, line in cells:
            self.submit(source, script_line=line, rerun=True)

    def action_restart_kernel(self) -> None:
        from gradrepl.ui.restarting import ask_to_restart

        ask_to_restart(self)

    @work(group="kernel-control", exclusive=True)
    async def restart_kernel(self, replay: Replay | None = None) -> None:
        from gradrepl.ui.restarting import restart

        await restart(self, replay)

    def action_transcript_latest(self) -> None:
        self.transcript.scroll_to_latest()

    def action_clear_transcript(self) -> None:
        """Empty the transcript's view (Ctrl+L); the session's cells stay, to save or run again."""
        self.transcript.clear()
        self.backward_log.clear()

    def action_save(self) -> None:
        from gradrepl.ui.saving import save

        save(self)

    def action_save_as(self, then_quit: bool = False) -> None:
        from gradrepl.ui.saving import ask_where_to_save

        ask_where_to_save(self, then_quit=then_quit)

    def save_to(self, path: Path) -> bool:
        from gradrepl.ui.saving import save_to

        return save_to(self, path)

    async def action_quit(self) -> None:
        from gradrepl.ui.saving import quit_or_ask

        await quit_or_ask(self)

    async def quit_now(self) -> None:
        self.journal.close()
        await self.runner.shutdown()
        self.exit(0)

    async def on_unmount(self) -> None:
        await self.runner.shutdown()

    # ------------------------------------------------------------ palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        from gradrepl.ui.palette import system_commands

        yield from system_commands(self, screen, super().get_system_commands(screen))

    def action_save_screenshot(self) -> None:
        from gradrepl.ui.palette import save_screenshot

        save_screenshot(self)

    def action_toggle_nan_check(self) -> None:
        from gradrepl.ui.nan_check import toggle_nan_check

        toggle_nan_check(self)

    def action_toggle_sandbox(self) -> None:
        from gradrepl.ui.sandbox_toggle import toggle_sandbox

        toggle_sandbox(self)

    def action_copy_output(self) -> None:
        from gradrepl.ui.palette import copy_last_output

        copy_last_output(self)
