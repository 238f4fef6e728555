import base64

from triggerscope.reports import html as h


def test_text_is_escaped() -> None:
    assert h.text("<script>\"x\" & 'y'</script>") == (
        "&lt;script&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/script&gt;"
    )


def test_marked_highlights_only_the_activating_token_and_escapes_the_rest() -> None:
    out = h.marked("a <b> «ban&ana» c")
    assert out == "a &lt;b&gt; <mark>ban&amp;ana</mark> c"
    assert h.marked("no mark <i>") == "no mark &lt;i&gt;"


def test_image_is_inlined() -> None:
    tag = h.image(b"\x89PNG-bytes", 'a "plot"')
    assert 'alt="a &quot;plot&quot;"' in tag
    data = tag.split("base64,")[1].split('"')[0]
    assert base64.b64decode(data) == b"\x89PNG-bytes"


def test_page_forbids_outside_resources() -> None:
    page = h.page("<t>", "<p>x</p>")
    assert page.startswith("<!DOCTYPE html>")
    assert "default-src 'none'; img-src data:" in page
    assert "<title>&lt;t&gt;</title>" in page


def test_table_and_tokens() -> None:
    table = h.table(["a", "<b>"], [["1", "x"]], num=(0,))
    assert '<td class="num">1</td><td>x</td>' in table and "<th>&lt;b&gt;</th>" in table
    assert h.tokens([" apple", "<x>"]) == (
        '<span class="tok"> apple</span><span class="tok">&lt;x&gt;</span>'
    )
    assert h.yes_no(None) == "n/a" and "yes" in h.yes_no(True) and "no" in h.yes_no(False)


def test_leading_space_of_a_token_is_not_highlighted() -> None:
    assert h.marked("oil« and» water") == "oil <mark>and</mark> water"
