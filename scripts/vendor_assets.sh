#!/usr/bin/env bash
# Vendor the JavaScript the static HTML book needs, so that it reads with the network cut off.
#
#   require.js + @jupyter-widgets/html-manager (embed-amd.js and its fonts) -> widgets
#   MathJax 3 (tex-mml-chtml.js and the components it loads on demand)     -> math
#
# The files go to _vendor/html/vendor/ (git-ignored). _config.yml names _vendor/html in
# html_extra_path, so the build copies them to _build/html/vendor/, outside _static/ (Jupyter
# Book 1 adds every _static/**/*.js to every page, which rendered each widget twice).
# Versions and tarball hashes are pinned; `npm pack` fetches from the npm registry (or npm's
# cache) and the script checks each tarball's SHA-512 before unpacking it.
set -euo pipefail
cd "$(dirname "$0")/.."

# @jupyter-widgets/html-manager 1.0.x is the ipywidgets 8.1 line: 1.0.15 depends on
# @jupyter-widgets/controls ^5.0.13 and base ^6.0.12, as does the JupyterLab manager 5.0.16
# shipped with ipywidgets 8.1.9 (jupyterlab_widgets 3.0.17) in requirements.txt.
PACKAGES=(
  "@jupyter-widgets/html-manager@1.0.15 sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
  "requirejs@2.3.8 sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw=="
  "mathjax@3.2.2 sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
DEST=_vendor/html/vendor

command -v npm >/dev/null || { echo "vendor_assets.sh: npm (Node.js) is needed to fetch the widget and MathJax files; install Node.js and rerun 'make assets'" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for entry in "${PACKAGES[@]}"; do
  spec=${entry% *}; want=${entry#* }
  name=${spec%@*}
  file=$(cd "$tmp" && npm pack --silent "$spec" | tail -n 1)
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/$file" | base64 -w0)"
  if [ "$got" != "$want" ]; then
    echo "vendor_assets.sh: $spec: tarball SHA-512 is $got, expected $want" >&2; exit 1
  fi
  mkdir -p "$tmp/${name//\//_}"
  tar -xzf "$tmp/$file" -C "$tmp/${name//\//_}"
done

rm -rf _vendor
mkdir -p "$DEST/html-manager" "$DEST/mathjax"

cp "$tmp/requirejs/package/require.js" "$DEST/require.js"

# embed-amd.js plus the font files it references (Font Awesome, for icons in widgets).
manager="$tmp/@jupyter-widgets_html-manager/package/dist"
cp "$manager/embed-amd.js" "$DEST/html-manager/"
cp "$manager"/*.woff2 "$manager"/*.woff "$manager"/*.ttf "$manager"/*.eot "$manager"/*.svg "$DEST/html-manager/"

# MathJax: the combined component Sphinx loads by default, and the folders it loads on demand
# (extensions, the CHTML fonts, the menu, accessibility and speech rules).
mathjax="$tmp/mathjax/package/es5"
cp "$mathjax/tex-mml-chtml.js" "$DEST/mathjax/"
cp -r "$mathjax"/{a11y,adaptors,input,output,sre,ui} "$DEST/mathjax/"


# widgets-setup.js runs between require.js and embed-amd.js:
# 1. require.js names the widget manager's modules "@jupyter-widgets/..."; the manager looks for
#    its fonts next to each module's URL, by default relative to the page (404s). Map those names
#    onto the folder that holds the fonts, found from this script's own URL.
# 2. ipywidgets typesets descriptions and labels with MathJax 2's MathJax.Hub.Queue; the book
#    loads MathJax 3 (TypeError "reading 'Queue'"). Give MathJax 3 that one call.
cat > "$DEST/widgets-setup.js" <<'JS'
(function () {
  var here = document.currentScript.src.replace(/[^\/]*$/, "") + "html-manager";
  window.requirejs.config({paths: {"@jupyter-widgets/html-manager/dist": here, "@jupyter-widgets": here}});
  window.addEventListener("load", function () {
    var mj = window.MathJax;
    if (mj && mj.startup && !mj.Hub) {
      mj.Hub = {Queue: function (job) {
        mj.startup.promise.then(function () { return mj.typesetPromise([job[2]]); });
      }};
    }
  });
})();
JS

touch _vendor/.installed
echo "Vendored widget manager, require.js and MathJax into $DEST"
