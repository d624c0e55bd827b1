"""Hostile text shared by the widget's and the console's tests: wherever stored text is shown
it must stay text (no element, no script run, no request to evil.example)."""

WIDGET_PAYLOAD = (
    "<script>window.__xss=1</script> "
    '<img src="https://evil.example/x.png" onerror="window.__xss=2">'
    " ![pic](https://evil.example/p.png) [bad](javascript:window.__xss=3)"
    " [good](https://example.org/docs)"
)

CORPUS = [
    WIDGET_PAYLOAD,
    '"><svg onload="window.__xss=4">',
    "'); window.__xss=5; ('",
    "{{ 7*7 }} {% raw %}",
    '<a href="javascript:window.__xss=6">x</a>',
]
