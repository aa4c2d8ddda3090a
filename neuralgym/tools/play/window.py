"""Play's window: the game frame on the left, the HUD panel on the right, help drawn over the game."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuralgym.common.window import require_pygame
from neuralgym.tools.play.hud import BACKGROUND, COLOURS, HUD_ROWS, PANEL_W


class PlayWindow:
    """The game frame on the left, the HUD panel on the right, help drawn over the game."""

    def __init__(self, title: str, game_wh: tuple[int, int]):
        pg = self._pg = require_pygame()
        pg.display.init()
        pg.font.init()
        self.font = pg.font.SysFont("dejavusansmono,liberationmono,monospace", 16)
        self.line_h = self.font.get_linesize()
        self.game_wh = game_wh
        height = max(game_wh[1], HUD_ROWS * self.line_h + 20)
        pg.display.set_caption(title)
        self.screen = pg.display.set_mode((game_wh[0] + PANEL_W, height))

    def draw(self, game_rgb: np.ndarray, hud: Sequence[tuple[str, str]], help_rows: Sequence[str] | None) -> None:
        pg = self._pg
        self.screen.fill(BACKGROUND)
        self.screen.blit(pg.surfarray.make_surface(game_rgb.swapaxes(0, 1)), (0, 0))
        x = self.game_wh[0] + 14
        for i, (text, style) in enumerate(hud):
            if text:
                self.screen.blit(self._fit(text, PANEL_W - 24, COLOURS[style]), (x, 10 + i * self.line_h))
        if help_rows:
            self._draw_help(help_rows)
        pg.display.flip()

    def _fit(self, text: str, width: int, colour: tuple[int, int, int]) -> Any:
        """Render ``text``, cut with "..." to ``width`` pixels."""
        while len(text) > 4 and self.font.size(text)[0] > width:
            text = text[:-4] + "..."
        return self.font.render(text, True, colour)

    def _draw_help(self, rows: Sequence[str]) -> None:
        pg = self._pg
        w, h = self.game_wh
        box_h = min(h, len(rows) * self.line_h + 20)
        overlay = pg.Surface((w, box_h), pg.SRCALPHA)
        overlay.fill((0, 0, 0, 200))
        self.screen.blit(overlay, (0, 0))
        for i, text in enumerate(rows):
            self.screen.blit(self._fit(text, w - 20, COLOURS["text"]), (12, 10 + i * self.line_h))

    @property
    def size(self) -> tuple[int, int]:
        return self.screen.get_size()

    def snapshot(self) -> np.ndarray:
        """The window as an (H, W, 3) uint8 RGB array."""
        return np.ascontiguousarray(self._pg.surfarray.array3d(self.screen).swapaxes(0, 1))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._pg.image.save(self.screen, str(path))

    def close(self) -> None:
        self._pg.display.quit()
