"""Teacher content (pure): sanitized rich text, links, video embeds and framing rules."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lti_tool.playlists.content import (
    HTML_MAX,
    URL_MAX,
    ContentError,
    check_url,
    frame_allowed,
    is_video_file,
    origin_of,
    sanitize_html,
    video_embed_url,
)

LINK_ATTRS = 'target="_blank" rel="noopener noreferrer"'

# ---------------------------------------------------------------- sanitize_html


def test_allowed_markup_is_kept():
    html = ("<h2>Title</h2><p>Some <strong>bold</strong>, <b>b</b>, <em>em</em>, <i>i</i>, "
            "<u>u</u><br>and <code>x = 1</code></p><ul><li>one</li></ul><ol><li>two</li></ol>"
            "<blockquote>q</blockquote><pre>pre</pre><h3>a</h3><h4>b</h4>"
            "<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>d</td></tr></tbody>"
            "</table>")
    assert sanitize_html(html) == html


def test_links_and_images():
    assert sanitize_html('<a href="https://example.com/x?a=1&amp;b=2" title="T">go</a>') == (
        f'<a href="https://example.com/x?a=1&amp;b=2" title="T" {LINK_ATTRS}>go</a>')
    assert sanitize_html('<a href="mailto:t@example.com" target="_self">mail</a>') == (
        f'<a href="mailto:t@example.com" {LINK_ATTRS}>mail</a>')
    assert sanitize_html('<p><img src="https://example.com/a.png" alt="A" width="9"></p>') == (
        '<p><img src="https://example.com/a.png" alt="A"></p>')


@pytest.mark.parametrize(("dirty", "clean"), [
    ("<p>ok</p><script>alert(1)</script>", "<p>ok</p>"),
    ("<p>ok</p><style>p { color: red }</style>", "<p>ok</p>"),
    ('<p onclick="alert(1)" style="color:red" class="x" id="y">ok</p>', "<p>ok</p>"),
    ('<a href="javascript:alert(1)">x</a>', f"<a {LINK_ATTRS}>x</a>"),
    ('<a href=" JaVaScRiPt:alert(1)">x</a>', f"<a {LINK_ATTRS}>x</a>"),
    ('<a href="java&#x09;script:alert(1)">x</a>', f"<a {LINK_ATTRS}>x</a>"),
    ('<a href="/logout">x</a>', f"<a {LINK_ATTRS}>x</a>"),
    ('<a href="//evil.example/x">x</a>', f"<a {LINK_ATTRS}>x</a>"),
    ('<a href="ftp://example.com/f">x</a>', f"<a {LINK_ATTRS}>x</a>"),
    ('<p><img src="data:image/png;base64,AAAA" onerror="alert(1)"></p>', "<p><img></p>"),
    ('<p><img src="mailto:x@example.com"></p>', "<p><img></p>"),
    ("<div><span>text</span></div>", "<p>text</p>"),
    ("<iframe src='https://example.com'></iframe><p>after</p>", "<p>after</p>"),
    ("<p>a<!-- secret -->b</p>", "<p>ab</p>"),
    ('<svg><a href="javascript:x">s</a></svg><p>after</p>', "<p>after</p>"),
])
def test_dangerous_markup_is_removed(dirty, clean):
    assert sanitize_html(dirty) == clean


def test_plain_text_becomes_paragraphs():
    text = "First line\r\nsecond line\n\n  \nSecond paragraph: 3 < 4 & 5 > 2\n\n\n"
    assert sanitize_html(text) == (
        "<p>First line<br>second line</p>\n<p>Second paragraph: 3 &lt; 4 &amp; 5 &gt; 2</p>")


def test_text_without_complete_tags_is_plain():
    assert sanitize_html("if a<b then stop") == "<p>if a&lt;b then stop</p>"
    assert sanitize_html("AT&amp;T") == "<p>AT&amp;amp;T</p>"  # plain text is literal


def test_html_whose_tags_are_all_removed_is_wrapped():
    assert sanitize_html("<div>Tom & Jerry</div>") == "<p>Tom &amp; Jerry</p>"
    assert sanitize_html("<script>x</script>") == ""


def test_empty_and_whitespace():
    assert sanitize_html("") == ""
    assert sanitize_html(" \n\t ") == ""


def test_length_limits():
    assert sanitize_html("x" * (HTML_MAX - 7)) == "<p>" + "x" * (HTML_MAX - 7) + "</p>"
    with pytest.raises(ContentError, match=r"^The text is 100,001 characters long; at most "
                                           r"100,000 are allowed\."):
        sanitize_html("x" * (HTML_MAX + 1))
    with pytest.raises(ContentError, match=r"once formatted as HTML"):
        sanitize_html("&" * 30_000)


def test_lone_surrogates_are_an_error():
    with pytest.raises(ContentError, match="unpaired surrogates"):
        sanitize_html("a\ud800b")


def test_sanitized_text_is_a_fixed_point():
    for text in ("<li><table><li>", "</a> & ", "plain\n\ntext", "<b>x</b>\n\ny"):
        once = sanitize_html(text)
        assert sanitize_html(once) == once


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    handle_startendtag = handle_starttag


_DANGEROUS = st.sampled_from([
    "<script>alert(1)</script>", "<SCRIPT SRC=//x.js>", "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">', '<a href="JAVASCRIPT:x">', "<a href='data:text/html,x'>",
    '<img src="data:image/svg+xml,<svg onload=alert(1)>">', "<svg onload=alert(1)>",
    "<body onload=x>", '<p style="background:url(javascript:x)">', "<iframe src=x>",
    "<style>*{}</style>", '<a href="java\tscript:x">', "<math><mtext><script>x</script>",
    "<!--<script>x</script>-->", "<noscript><p title='</noscript><img src=x onerror=a>'>",
    '<a href="https://ok.example" onmouseover="x">', "<object data=x>", "<embed src=x>",
    "<form action=javascript:x><button>", "<li><table><li>", "<p", ">", "&", "\n\n", "<br/>",
    '<a href="https://ok.example">ok</a>', "<b>", "</b>", "<textarea><script>x</script>",
])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_DANGEROUS, st.text(max_size=8)), max_size=12).map("".join))
def test_sanitized_output_is_safe_and_stable(text):
    out = sanitize_html(text)
    assert "<script" not in out.lower() and "<style" not in out.lower()
    parser = _Collector()
    parser.feed(out)
    parser.close()
    assert not {"script", "style", "iframe", "svg", "math", "object", "embed", "form",
                "textarea", "noscript", "body"} & set(parser.tags)
    for name, value in parser.attrs:
        assert not name.startswith("on"), (name, out)
        assert name in {"href", "title", "src", "alt", "target", "rel"}, (name, out)
        if name in ("href", "src"):
            assert value is not None
            assert value.lower().startswith(("http://", "https://", "mailto:")), out
    assert sanitize_html(out) == out


# ---------------------------------------------------------------- check_url


@pytest.mark.parametrize(("url", "normalised"), [
    ("https://example.com", "https://example.com"),
    ("  HTTPS://Example.COM:8080/Path?Q=A#Frag  ", "https://example.com:8080/Path?Q=A#Frag"),
    ("http://localhost/x", "http://localhost/x"),
    ("https://[2001:db8::1]:8443/x", "https://[2001:db8::1]:8443/x"),
    ("https://bücher.example/", "https://bücher.example/"),
    ("https://example.com.", "https://example.com."),
    ("https://a_b.example.com?q", "https://a_b.example.com?q"),
])
def test_check_url_accepts(url, normalised):
    assert check_url(url) == normalised


@pytest.mark.parametrize(("url", "message"), [
    ("", "Enter a link: a web address starting with https://."),
    ("javascript:alert(1)",
     "Links must start with http:// or https://; 'javascript:alert(1)' does not."),
    ("www.example.com", "Links must start with http:// or https://; 'www.example.com' does not."),
    ("ftp://example.com", "Links must start with http:// or https://; 'ftp://example.com' does "
                          "not."),
    ("https:example.com", "Links must start with http:// or https://; 'https:example.com' does "
                          "not."),
    ("https://", "The link 'https://' has no website name after https://."),
    ("https:///path", "The link 'https:///path' has no website name after https://."),
    ("https://user:pw@example.com", "Links cannot contain a user name or password (the part "
                                    "before @ in 'https://user:pw@example.com'); remove it."),
    ("https://exa mple.com", "The link 'https://exa mple.com' contains a space, line break or "
                             "other invisible character; remove it (write a space as %20)."),
    ("https://example.com/\x00", "The link 'https://example.com/ ' contains a space, line "
                                 "break or other invisible character; remove it (write a "
                                 "space as %20)."),
    ("https://example.com\\@evil.example", "The link 'https://example.com\\@evil.example' "
                                           "contains a backslash (\\); use / instead."),
    ("https://exa<mple.com/", "'exa<mple.com' in 'https://exa<mple.com/' is not a valid "
                              "website name."),
    ("https://a..b/", "'a..b' in 'https://a..b/' is not a valid website name."),
    ("https://[::g]/", "'[::g]' in 'https://[::g]/' is not a valid website name."),
    ("https://example.com:0/", "The port ':0' in 'https://example.com:0/' is not valid; it "
                               "must be a number from 1 to 65535."),
    ("https://example.com:http/", "The port ':http' in 'https://example.com:http/' is not "
                                  "valid; it must be a number from 1 to 65535."),
])
def test_check_url_rejects(url, message):
    with pytest.raises(ContentError) as caught:
        check_url(url)
    assert str(caught.value) == message


def test_check_url_length():
    url = "https://example.com/" + "a" * (URL_MAX - 20)
    assert check_url(url) == url
    with pytest.raises(ContentError, match="^The link is 2,001 characters long; at most 2,000"):
        check_url(url + "a")


@pytest.mark.parametrize(("url", "origin"), [
    ("https://Example.com:443/a", "https://example.com"),
    ("http://example.com:80", "http://example.com"),
    ("http://example.com:8080/x", "http://example.com:8080"),
    ("https://example.com:80/", "https://example.com:80"),
    ("https://[::1]:443/", "https://[::1]"),
])
def test_origin_of(url, origin):
    assert origin_of(url) == origin


def test_origin_of_rejects_non_http():
    with pytest.raises(ContentError):
        origin_of("file:///etc/passwd")


# ---------------------------------------------------------------- videos

YT = "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"


@pytest.mark.parametrize(("url", "embed"), [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", YT),
    ("https://youtube.com/watch?feature=share&v=dQw4w9WgXcQ", YT),
    ("https://m.youtube.com/watch?v=dQw4w9WgXcQ&t=42", YT + "?start=42"),
    ("https://youtu.be/dQw4w9WgXcQ?t=1m30s", YT + "?start=90"),
    ("https://youtu.be/dQw4w9WgXcQ?si=abc&t=90s", YT + "?start=90"),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ#t=1h2m3s", YT + "?start=3723"),
    ("https://www.youtube.com/shorts/dQw4w9WgXcQ", YT),
    ("https://www.youtube.com/embed/dQw4w9WgXcQ?start=15", YT + "?start=15"),
    ("https://www.youtube.com/live/dQw4w9WgXcQ", YT),
    ("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ", YT),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=0", YT),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=soon", YT),
    ("HTTPS://WWW.YOUTUBE.COM/watch?v=dQw4w9WgXcQ", YT),
    ("https://vimeo.com/76979871", "https://player.vimeo.com/video/76979871"),
    ("https://www.vimeo.com/76979871/", "https://player.vimeo.com/video/76979871"),
    ("https://vimeo.com/76979871/abcdef1234",
     "https://player.vimeo.com/video/76979871?h=abcdef1234"),
    ("https://vimeo.com/channels/staffpicks/76979871",
     "https://player.vimeo.com/video/76979871"),
    ("https://player.vimeo.com/video/76979871?h=abcdef1234&autoplay=1",
     "https://player.vimeo.com/video/76979871?h=abcdef1234"),
])
def test_video_embed_url(url, embed):
    assert video_embed_url(url) == embed


@pytest.mark.parametrize("url", [
    "https://www.youtube.com/watch?v=short",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ123",
    "https://www.youtube.com/watch?v=dQw4w9WgX%22Q",
    "https://www.youtube.com/channel/UC1234567890",
    "https://youtu.be/",
    "https://evil.example/watch?v=dQw4w9WgXcQ",
    "https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ",
    "javascript:alert('https://youtu.be/dQw4w9WgXcQ')",
    "https://vimeo.com/about",
    "https://player.vimeo.com/76979871",
    "https://example.com/movie.mp4",
    "not a url",
])
def test_video_embed_url_rejects(url):
    assert video_embed_url(url) is None


@pytest.mark.parametrize(("url", "expected"), [
    ("https://example.com/movie.mp4", True),
    ("https://example.com/Movie.WEBM?token=1", True),
    ("https://example.com/a/b.ogg#t=5", True),
    ("https://example.com/movie.mp4.html", False),
    ("https://example.com/?file=movie.mp4", False),
    ("javascript:x.mp4", False),
    ("https://youtu.be/dQw4w9WgXcQ", False),
])
def test_is_video_file(url, expected):
    assert is_video_file(url) is expected


# ---------------------------------------------------------------- frame_allowed

ME = "https://pathwise.example"
CSP = "Content-Security-Policy"


@pytest.mark.parametrize(("headers", "page_url", "allowed"), [
    ({}, None, True),
    ({"X-Frame-Options": "DENY"}, None, False),
    ({"x-frame-options": "deny"}, None, False),
    ({"X-Frame-Options": "SAMEORIGIN"}, "https://other.example/x", False),
    ({"X-Frame-Options": "SAMEORIGIN"}, "https://pathwise.example:443/page", True),
    ({"X-Frame-Options": "SAMEORIGIN"}, None, False),
    ({"X-Frame-Options": "ALLOW-FROM https://pathwise.example"}, None, True),
    ({"X-Frame-Options": "SAMEORIGIN, SAMEORIGIN"}, "https://pathwise.example/", True),
    ({"X-Frame-Options": "SAMEORIGIN, DENY"}, "https://pathwise.example/", False),
    ({"X-Frame-Options": "bogus, other"}, None, True),
    ({CSP: "frame-ancestors 'none'"}, None, False),
    ({CSP: "frame-ancestors"}, None, False),
    ({CSP: "frame-ancestors *"}, None, True),
    ({CSP: "frame-ancestors *", "X-Frame-Options": "DENY"}, None, True),
    ({CSP: "frame-ancestors 'none'", "X-Frame-Options": "ALLOWALL"}, None, False),
    ({CSP: "default-src 'self'"}, None, True),
    ({CSP: "default-src 'self'", "X-Frame-Options": "DENY"}, None, False),
    ({CSP: "frame-ancestors 'self'"}, "https://other.example/", False),
    ({CSP: "frame-ancestors 'self'"}, "https://pathwise.example/a", True),
    ({CSP: "frame-ancestors 'self'"}, "http://pathwise.example/a", True),
    ({CSP: "frame-ancestors 'self'"}, None, False),
    ({CSP: "default-src 'none'; Frame-Ancestors https://pathwise.example; img-src *"}, None,
     True),
    ({CSP: "frame-ancestors https://other.example"}, None, False),
    ({CSP: "frame-ancestors pathwise.example"}, "https://x.example/", True),
    ({CSP: "frame-ancestors pathwise.example"}, "http://x.example/", True),
    ({CSP: "frame-ancestors http://pathwise.example"}, None, True),
    ({CSP: "frame-ancestors https:"}, None, True),
    ({CSP: "frame-ancestors http:"}, None, True),
    ({CSP: "frame-ancestors data:"}, None, False),
    ({CSP: "frame-ancestors *.example"}, None, True),
    ({CSP: "frame-ancestors https://*.pathwise.example"}, None, False),
    ({CSP: "frame-ancestors https://pathwise.example:443"}, None, True),
    ({CSP: "frame-ancestors https://pathwise.example:8443"}, None, False),
    ({CSP: "frame-ancestors https://pathwise.example:*"}, None, True),
    ({CSP: "frame-ancestors https://pathwise.example/some/path"}, None, True),
    ({CSP: "frame-ancestors 'none' https://pathwise.example"}, None, True),
    ({CSP: "frame-ancestors 'self' https://lms.example"}, "https://other.example/", False),
    # Several policies (headers joined by commas): each one must allow the framing.
    ({CSP: "frame-ancestors *, frame-ancestors 'none'"}, None, False),
    ({CSP: "default-src *, frame-ancestors https://pathwise.example"}, None, True),
    ({CSP: "frame-ancestors https://pathwise.example https://a.example, "
           "frame-ancestors https://*.example"}, None, True),
    # A repeated directive inside one policy is ignored.
    ({CSP: "frame-ancestors *; frame-ancestors 'none'"}, None, True),
    # Report-only policies are not enforced.
    ({"Content-Security-Policy-Report-Only": "frame-ancestors 'none'"}, None, True),
])
def test_frame_allowed(headers, page_url, allowed):
    assert frame_allowed(headers, ME, page_url=page_url) is allowed


def test_frame_allowed_on_a_non_default_port():
    here = "http://localhost:5000"
    assert frame_allowed({CSP: "frame-ancestors localhost:5000"}, here,
                         page_url="http://localhost:5000/x")
    assert not frame_allowed({CSP: "frame-ancestors localhost"}, here)
    assert frame_allowed({"X-Frame-Options": "SAMEORIGIN"}, "http://localhost:5000/",
                         page_url="http://LOCALHOST:5000/page")


def test_frame_allowed_rejects_a_bad_embedding_origin():
    with pytest.raises(ContentError):
        frame_allowed({}, "pathwise.example")
