"""The key bar: one line at the bottom of every screen with the keys that work there.

Textual's Footer rebuilds a widget per key whenever focus or the bindings change; at start-up
that happened three to five times and took ~60 ms, more than the queue's first page. The key
bar draws the same information (the shown, enabled bindings of the focused widget, the screen
and the app, with their descriptions and the user's key map) as one line of text.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class KeyBar(Widget):
    """The keys of the current focus, as ``key Description`` pairs on one line."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $panel;
        color: $foreground;
    }
    KeyBar > .key-bar--key {
        text-style: bold;
        color: $accent;
    }
    KeyBar > .key-bar--disabled {
        color: $text-disabled;
    }
    """

    COMPONENT_CLASSES = {"key-bar--key", "key-bar--disabled"}

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen: object) -> None:
        self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key")
        disabled_style = self.get_component_rich_style("key-bar--disabled")
        line = Text(no_wrap=True, overflow="ellipsis")
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            key = self.app.get_key_display(binding)
            line.append(" ")
            line.append(key, style=key_style if active.enabled else disabled_style)
            line.append(" ")
            line.append(binding.description, style="" if active.enabled else disabled_style)
            line.append(" ")
        return line
