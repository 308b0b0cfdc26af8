"""Text colours kept readable on the background they are drawn on (WCAG 2 contrast), whatever
the theme: a theme's warning yellow is fine on a dark panel and faint on a light one."""

from __future__ import annotations

RGB = tuple[int, int, int]
TEXT_CONTRAST = 4.5  # WCAG AA for normal text


def luminance(rgb: RGB) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = rgb
    return 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)


def contrast(first: RGB, second: RGB) -> float:
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def readable(color: RGB, background: RGB, minimum: float = TEXT_CONTRAST) -> RGB:
    """`color`, darkened on a light background or lightened on a dark one, in steps of a
    tenth, until it has `minimum` contrast against `background` (black or white at worst)."""
    target = 0 if luminance(background) > 0.18 else 255
    red, green, blue = color
    for step in range(11):
        share = step / 10
        mixed = (round(red + (target - red) * share), round(green + (target - green) * share),
                 round(blue + (target - blue) * share))
        if contrast(mixed, background) >= minimum:
            return mixed
    return (target, target, target)


def on(background: RGB) -> RGB:
    """Black or white, whichever reads better on `background` (a badge's text)."""
    return (0, 0, 0) if contrast((0, 0, 0), background) >= contrast((255, 255, 255), background) else (255, 255, 255)
