"""The three map pages, built with folium on Leaflet; every asset URL points at gridwatch itself."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field

import folium
from branca.element import Element, MacroElement
from folium.elements import JSCSSMixin
from jinja2 import Template

from maps.assets import (
    HLS_JS,
    JSQR_JS,
    LEAFLET_CSS,
    LEAFLET_JS,
    VECTORGRID_JS,
    ZXING_JS,
    static_url,
)

DEFAULT_BOUNDS = ((28.2, 115.7), (28.9, 116.3))  # Nanchang County, until data says otherwise


@dataclass
class PageConfig:
    """What a page's script needs to start: where the data lives and where to look first."""

    view: str  # "live" | "install" | "audit"
    title: str
    bounds: tuple[tuple[float, float], tuple[float, float]] = DEFAULT_BOUNDS
    tile_url: str | None = None
    region: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "view": self.view,
                "api": "/api/v1",
                "tiles": "/tiles",
                "bounds": self.bounds,
                "tileUrl": self.tile_url,
                "region": self.region,
                **LAZY_SCRIPTS.get(self.view, {}),
                **self.extra,
            },
            ensure_ascii=False,
        )


# Scripts a view loads before its own: the installer's field tools (locate, compass, label
# scanning with the barcode reader, the offline queue).
VIEW_SCRIPTS: dict[str, list[tuple[str, str]]] = {
    "install": [
        ("jsqr", JSQR_JS),
        ("zxing", ZXING_JS),
        ("gw_install_field", static_url("gw-install-field.js")),
    ],
    # the operator's alarm queue and history
    "live": [
        ("gw_alarms", static_url("gw-alarms.js")),
        ("gw_camera", static_url("gw-camera.js")),
        ("gw_devices", static_url("gw-devices.js")),
        ("gw_places", static_url("gw-places.js")),
    ],
}

# Scripts a view loads only when first needed, named in its config: hls.js (540 kB, more than
# the rest of the map's first load) when the operator starts a live view.
LAZY_SCRIPTS: dict[str, dict[str, str]] = {"live": {"hlsScript": HLS_JS}}


class GridwatchApp(JSCSSMixin, MacroElement):
    """Loads gridwatch's scripts and starts the page's view on the folium map."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        gw.start({{ this._parent.get_name() }}, {{ this.config }});
        {% endmacro %}
        """
    )

    def __init__(self, config: PageConfig) -> None:
        super().__init__()
        self._name = "GridwatchApp"
        self.config = config.to_json()
        self.default_js = [
            ("vectorgrid", VECTORGRID_JS),
            ("gw_safe", static_url("gw-safe.js")),
            ("gw_common", static_url("gw-common.js")),
            *VIEW_SCRIPTS.get(config.view, []),
            (f"gw_{config.view}", static_url(f"gw-{config.view}.js")),
        ]
        self.default_css = [("gw_css", static_url("gw.css"))]


SHELLS = {
    "live": "live.html",
    "install": "install.html",
    "audit": "audit.html",
}
LOGIN_SHELL = "login.html"  # the sign-in dialog, the same on every page, after its shell


@dataclass(frozen=True)
class Page:
    """One view: the HTML with no inline script, and the script it loads from script_url."""

    html: str
    script: str


INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def build_page(config: PageConfig, script_url: str = "page.js") -> Page:
    """One view: a folium map with local Leaflet, our panels and our script.

    folium writes its map set-up as inline <script> blocks; the Content-Security-Policy allows
    scripts from gridwatch's own URLs only, so those blocks move into `script`, which the page
    loads from `script_url` (served by the pages router, rebuilt from the same config)."""
    m = folium.Map(
        location=None,
        tiles=None,
        zoom_start=10,
        control_scale=True,
        prefer_canvas=False,
        width="100%",
        height="100%",
    )
    m._id = "gw"  # stable names: the HTML and its script are built in separate requests
    # folium would fetch Leaflet, jQuery, Bootstrap and Font Awesome from CDNs; the command centre has
    # no internet, and gridwatch uses none but Leaflet: serve that one from node_modules.
    m.default_js = [("leaflet", LEAFLET_JS)]
    m.default_css = [("leaflet_css", LEAFLET_CSS)]
    if config.tile_url:
        base = folium.TileLayer(
            tiles=config.tile_url,
            attr="base map (GRIDWATCH_TILE_URL)",
            name="base map",
            max_zoom=20,
        )
        base._id = "base"
        base.add_to(m)
    m.fit_bounds([list(config.bounds[0]), list(config.bounds[1])])
    root = m.get_root()
    root.header.add_child(Element(f"<title>{html.escape(config.title)}</title>"), name="title")
    root.header.add_child(
        Element('<meta name="viewport" content="width=device-width, initial-scale=1">'), name="vp"
    )
    if config.view == "install":
        root.header.add_child(
            Element('<link rel="manifest" href="/install/manifest.webmanifest">'), name="manifest"
        )
    shell = static_file(SHELLS[config.view]) + static_file(LOGIN_SHELL)
    root.html.add_child(Element(shell), name="gw_shell")
    app = GridwatchApp(config)
    app._id = "app"
    app.add_to(m)
    rendered = root.render()
    script = "\n".join(block.strip() for block in INLINE_SCRIPT.findall(rendered))
    page = INLINE_SCRIPT.sub("", rendered)
    tag = f'<script src="{html.escape(script_url)}"></script>'
    page = page.replace("</html>", f"{tag}\n</html>") if "</html>" in page else page + tag
    return Page(html=page, script=script)


def static_file(name: str) -> str:
    """The text of one of our own static files (page shells)."""
    from maps.assets import STATIC

    return (STATIC / name).read_text("utf-8")
