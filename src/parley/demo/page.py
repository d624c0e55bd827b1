"""`/demo`: a page that embeds the demo widget with the one script tag a tenant would paste."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from parley.kit.runtime import get_runtime

router = APIRouter(include_in_schema=False)
CSP = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:"
)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Parley demo</title>
<style>
/* On a wide screen the page keeps clear of the open chat panel (370 px at the right edge), so
   the suggested questions stay visible beside the answers. */
body{{font:16px/1.6 system-ui,sans-serif;max-width:720px;margin:3rem auto;padding:0 1rem;
color:#1d2330}}
code{{background:#f1f3f7;padding:.1em .3em;border-radius:4px;overflow-wrap:anywhere}}
pre{{white-space:pre-wrap}}
.try{{display:flex;flex-wrap:wrap;gap:.5rem;padding:0;list-style:none}}
.try button{{font:inherit;padding:.35rem .8rem;border:1px solid #c9d1de;border-radius:999px;
background:#fff;color:#1d2330;cursor:pointer}}
.try button:hover,.try button:focus-visible{{border-color:#1f6feb;color:#1f6feb}}
@media (min-width:1000px){{body{{margin-right:420px;
margin-left:max(1rem,calc((100vw - 420px - 720px)/2))}}}}
</style></head>
<body>
<h1>Parley demo</h1>
<p>This page embeds the demo workspace's chat widget with one script tag. Open the chat button in
the corner and ask a question: the bot answers from Parley's own documentation and cites it.</p>
<pre><code>{snippet}</code></pre>
<p>Or try one of these:</p>
<ul class="try">{suggestions}</ul>
{script}
<script src="/demo.js" defer></script>
</body></html>"""

SUGGESTIONS = (
    "What is Parley?",
    "How do I install Parley?",
    "How do I add my own documents?",
    "Can a person take over a chat from the bot?",
    "Which language models can I use?",
)

SCRIPT = """document.querySelectorAll("[data-ask]").forEach((b) => {
  b.addEventListener("click", () => { if (window.Parley) window.Parley.send(b.dataset.ask); });
});
"""

MISSING = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Parley demo</title>
</head><body><h1>No demo yet</h1><p>Start the server with <code>parley serve --demo</code>
(or <code>make run</code>) to seed the demo workspace.</p></body></html>"""


@router.get("/demo", response_class=HTMLResponse)
async def demo(request: Request) -> HTMLResponse:
    key = get_runtime(request).info.get("demo_widget_key")
    if not key:
        return HTMLResponse(MISSING, status_code=404, headers={"Content-Security-Policy": CSP})
    base = str(request.base_url).rstrip("/")
    safe = html.escape(str(key))
    tag = f'<script src="{base}/widget/v1/parley.js" data-widget-key="{safe}" async></script>'
    body = PAGE.format(
        snippet=html.escape(tag),
        suggestions="".join(
            f'<li><button type="button" data-ask="{html.escape(q)}">{html.escape(q)}</button></li>'
            for q in SUGGESTIONS
        ),
        script=f'<script src="/widget/v1/parley.js" data-widget-key="{safe}" async></script>',
    )
    return HTMLResponse(body, headers={"Content-Security-Policy": CSP})


@router.get("/demo.js")
async def demo_script() -> Response:
    """The suggestion buttons: a file, not inline script, under the page's strict CSP."""
    return Response(
        SCRIPT,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300"},
    )
