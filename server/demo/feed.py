"""The demo's built-in feed: a few sample videos with thumbnails drawn here as SVG.

Nothing is fetched: each thumbnail is a small landscape generated from the
video's id (so it is the same on every run), and the video URLs are made-up
``https://videos.example/...`` addresses that only travel inside video cards.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from html import escape
from itertools import pairwise

WIDTH, HEIGHT = 320, 180


@dataclass(frozen=True, slots=True)
class SampleVideo:
    id: str
    caption: str
    author: str
    duration_ms: int
    scene: str  # what the thumbnail draws: sunset, sea, city, peaks, stars, forest, dunes, coffee
    sky: tuple[str, str]  # top and bottom colours of the sky
    ground: tuple[str, ...]  # colours of the layers in front, back to front

    @property
    def url(self) -> str:
        return f"https://videos.example/{self.id}.mp4"

    @property
    def thumb_path(self) -> str:
        return f"/demo/thumbs/{self.id}.svg"

    def card(self) -> dict[str, object]:
        """As the demo page gets it from /demo/feed.json (``thumb`` relative to the hub)."""
        return {"id": self.id, "url": self.url, "thumb": self.thumb_path, "caption": self.caption,
                "author": self.author, "duration_ms": self.duration_ms}


FEED: tuple[SampleVideo, ...] = (
    SampleVideo("sunset-ride", "Sunset ride along the coast", "dave", 61_000, "sunset",
                ("#ff9a5a", "#7b3f9e"), ("#5b2a6e", "#3a1848")),
    SampleVideo("first-wave", "First wave of the morning", "mia", 48_000, "sea",
                ("#8fd3f4", "#dff3fb"), ("#3a8fc4", "#1f6aa0", "#0f4c7a")),
    SampleVideo("night-city", "Night city timelapse", "leo", 75_000, "city",
                ("#141b3a", "#3b2d6b"), ("#232a52", "#0d1126")),
    SampleVideo("ridge-walk", "Ridge walk above the clouds", "sam", 92_000, "peaks",
                ("#b9d7f2", "#f2e6d9"), ("#7d8fa8", "#4d5d78", "#2d3a52")),
    SampleVideo("under-stars", "Under the stars, no filter", "nora", 54_000, "stars",
                ("#060a1f", "#1e2a5a"), ("#0b0f22",)),
    SampleVideo("forest-rain", "Ten minutes of forest rain", "kai", 37_000, "forest",
                ("#a8c5a0", "#dfe9d6"), ("#5f8a5a", "#3d6b3f", "#234a2a")),
    SampleVideo("dune-buggy", "Dune buggy, full send", "zoe", 29_000, "dunes",
                ("#ffd59e", "#ffefd2"), ("#e9a860", "#d28a45", "#b86d2e")),
    SampleVideo("latte-art", "Latte art in 30 seconds", "ben", 30_000, "coffee",
                ("#f3e3d3", "#e2c8ae"), ("#6b4226",)),
)
BY_ID = {video.id: video for video in FEED}


def _ridge(rng: random.Random, base: float, amp: float, steps: int, sharp: bool) -> str:
    """A closed path of hills (smooth) or peaks (sharp) across the width, filled to the bottom."""
    step = WIDTH / steps
    points = [(i * step, base - rng.uniform(0.2, 1.0) * amp) for i in range(steps + 1)]
    if sharp:
        line = " ".join(f"L{x:.0f},{y:.0f}" for x, y in points)
        return f"M0,{HEIGHT} {line} L{WIDTH},{HEIGHT} Z"
    out = [f"M0,{HEIGHT} L0,{points[0][1]:.0f}"]
    for (x0, y0), (x1, y1) in pairwise(points):
        mid = (x0 + x1) / 2
        out.append(f"C{mid:.0f},{y0:.0f} {mid:.0f},{y1:.0f} {x1:.0f},{y1:.0f}")
    out.append(f"L{WIDTH},{HEIGHT} Z")
    return " ".join(out)


def _scene(video: SampleVideo, rng: random.Random) -> list[str]:
    g = video.ground
    shapes: list[str] = []
    if video.scene == "sunset":
        shapes.append('<circle cx="210" cy="104" r="38" fill="#ffd27a" opacity="0.95"/>')
        for i, colour in enumerate(g):
            shapes.append(f'<path d="{_ridge(rng, 130 + 22 * i, 34, 5, False)}" fill="{colour}"/>')
    elif video.scene == "sea":
        shapes.append('<circle cx="70" cy="46" r="20" fill="#fff6c9"/>')
        for i, colour in enumerate(g):
            y = 108 + 24 * i
            waves = " ".join("q20,-12 40,0 t40,0" if j == 0 else "t40,0" for j in range(8))
            shapes.append(f'<path d="M-10,{y} {waves} V{HEIGHT} H-10 Z" fill="{colour}"/>')
    elif video.scene == "city":
        shapes.append('<circle cx="260" cy="38" r="14" fill="#f4f1de"/>')
        for layer, colour in enumerate(g):
            x = -4.0
            while x < WIDTH:
                w, h = rng.uniform(18, 38), rng.uniform(40, 110) - layer * 22
                shapes.append(f'<rect x="{x:.0f}" y="{HEIGHT - h:.0f}" width="{w:.0f}" '
                              f'height="{h:.0f}" fill="{colour}"/>')
                if layer == len(g) - 1:
                    for wy in range(int(HEIGHT - h) + 8, HEIGHT - 8, 12):
                        for wx in range(int(x) + 4, int(x + w) - 5, 9):
                            if rng.random() < 0.45:
                                shapes.append(f'<rect x="{wx}" y="{wy}" width="4" height="5" '
                                              'fill="#ffd966" opacity="0.9"/>')
                x += w + rng.uniform(1, 6)
    elif video.scene == "peaks":
        for i, colour in enumerate(g):
            shapes.append(f'<path d="{_ridge(rng, 120 + 24 * i, 70 - 14 * i, 4 + i, True)}" '
                          f'fill="{colour}"/>')
        shapes.append('<ellipse cx="90" cy="118" rx="80" ry="9" fill="#ffffff" opacity="0.55"/>')
    elif video.scene == "stars":
        for _ in range(70):
            shapes.append(f'<circle cx="{rng.uniform(0, WIDTH):.0f}" cy="{rng.uniform(0, 130):.0f}" '
                          f'r="{rng.choice((0.7, 1, 1.4)):.1f}" fill="#ffffff" '
                          f'opacity="{rng.uniform(0.4, 1):.2f}"/>')
        shapes.append('<circle cx="246" cy="50" r="18" fill="#f5f3ce"/>'
                      '<circle cx="254" cy="44" r="16" fill="#0a1030"/>')
        shapes.append(f'<path d="{_ridge(rng, 150, 20, 6, False)}" fill="{g[0]}"/>')
    elif video.scene == "forest":
        for layer, colour in enumerate(g):
            for _ in range(9 + 3 * layer):
                x, h = rng.uniform(-10, WIDTH), rng.uniform(50, 80) + 18 * layer
                top = HEIGHT - h
                shapes.append(f'<path d="M{x:.0f},{top:.0f} l{h / 4:.0f},{h:.0f} h{-h / 2:.0f} Z" '
                              f'fill="{colour}"/>')
        for _ in range(40):
            rx, ry = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
            shapes.append(f'<path d="M{rx:.0f},{ry:.0f} l-3,9" stroke="#ffffff" stroke-width="1" '
                          'opacity="0.5"/>')
    elif video.scene == "dunes":
        shapes.append('<circle cx="250" cy="48" r="24" fill="#fff3b0"/>')
        for i, colour in enumerate(g):
            shapes.append(f'<path d="{_ridge(rng, 112 + 22 * i, 30, 3, False)}" fill="{colour}"/>')
    elif video.scene == "coffee":
        shapes.append('<ellipse cx="160" cy="100" rx="92" ry="62" fill="#ffffff" opacity="0.9"/>'
                      f'<ellipse cx="160" cy="96" rx="70" ry="46" fill="{g[0]}"/>'
                      '<path d="M160,66 c-26,8 -30,30 0,50 c30,-20 26,-42 0,-50 Z" fill="#f6e7d2"/>'
                      '<path d="M160,80 c-14,6 -14,18 0,28 c14,-10 14,-22 0,-28 Z" fill="#6b4226"/>'
                      '<path d="M160,112 v16" stroke="#f6e7d2" stroke-width="4" stroke-linecap="round"/>')
    return shapes


def thumbnail_svg(video: SampleVideo) -> str:
    """A 320 by 180 landscape for ``video``, with a play badge and its length."""
    rng = random.Random(video.id)
    seconds = video.duration_ms // 1000
    length = f"{seconds // 60}:{seconds % 60:02d}"
    top, bottom = video.sky
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(video.caption)}">',
        '<defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">'
        f'<stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/>'
        '</linearGradient></defs>',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="url(#sky)"/>',
        *_scene(video, rng),
        '<circle cx="160" cy="90" r="22" fill="#000000" opacity="0.35"/>'
        '<path d="M153,78 L172,90 L153,102 Z" fill="#ffffff"/>',
        f'<rect x="{WIDTH - 50}" y="{HEIGHT - 26}" width="42" height="18" rx="4" fill="#000000" '
        'opacity="0.6"/>',
        f'<text x="{WIDTH - 29}" y="{HEIGHT - 13}" font-family="sans-serif" font-size="12" '
        f'fill="#ffffff" text-anchor="middle">{length}</text>',
        "</svg>",
    ]
    return "".join(parts)


__all__ = ["BY_ID", "FEED", "SampleVideo", "thumbnail_svg"]
