"""Serves the widget's JavaScript (`/widget/v1/parley.js`, `/widget/v1/ui.js`): minified once,
gzipped once, with ETags, so a page load costs one small cached request."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from parley.kit.errors import NotFound
from parley.widget.assets import load_assets

router = APIRouter(prefix="/widget/v1", tags=["widget"], include_in_schema=False)


@router.get("/{name}")
async def widget_asset(name: str, request: Request) -> Response:
    asset = load_assets().get(name)
    if asset is None:
        raise NotFound("No such widget file.")
    headers = {
        "ETag": asset.etag,
        "Cache-Control": "public, max-age=300, stale-while-revalidate=86400",
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(
            asset.gzipped,
            media_type=asset.content_type,
            headers={**headers, "Content-Encoding": "gzip"},
        )
    return Response(asset.body, media_type=asset.content_type, headers=headers)
