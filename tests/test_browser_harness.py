"""The browser harness itself: a clean page is clean, and a page that reaches out is caught."""

from __future__ import annotations

from tests.browser import PageLog


def test_an_offline_page_loads_clean(open_page) -> None:  # type: ignore[no-untyped-def]
    page, log = open_page()
    page.set_content(
        "<html><body><svg width='10' height='10'><rect width='5' height='5'/></svg></body></html>"
    )
    assert page.locator("rect").count() == 1
    assert isinstance(log, PageLog) and log.clean


def test_a_page_that_loads_from_the_network_is_caught(open_page) -> None:  # type: ignore[no-untyped-def]
    page, log = open_page()
    page.set_content(
        "<html><head><script src='https://cdn.example.com/x.js'></script></head>"
        "<body><script>console.error('broken')</script></body></html>"
    )
    assert log.remote_requests == ["https://cdn.example.com/x.js"]
    assert "broken" in log.console_errors
    assert not log.clean
