"""Small-angle skew found by the projection profile, on drawn pages turned by known angles."""
import pytest
from PIL import Image

from app import deskew
import drawing

PAGE = drawing.draw_page(drawing.letter_lines() + drawing.receipt_lines())


def turned(degrees: float) -> Image.Image:
    return PAGE.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)


@pytest.mark.parametrize("degrees", [1.0, -2.0, 4.5, -6.5, 10.0, -14.0])
def test_the_angle_that_levels_the_page_is_found(degrees):
    assert deskew.skew_angle(turned(degrees)) == pytest.approx(-degrees, abs=0.3)


@pytest.mark.parametrize("page", [PAGE, turned(0.2), Image.new("L", (1275, 1650), 255)], ids=["level", "0.2", "blank"])
def test_a_level_or_empty_page_is_left_alone(page):
    assert deskew.skew_angle(page) == 0.0


def test_noise_without_lines_is_left_alone():
    noise = Image.effect_noise((1200, 1600), 90).point(lambda v: 0 if v < 60 else 255)
    assert deskew.skew_angle(noise) == 0.0


def test_levelled_page_keeps_its_corners():
    page = turned(-6.5)
    out = deskew.level(page, 6.5)
    assert out.width > page.width and out.height > page.height and out.getpixel((0, 0)) == 255
