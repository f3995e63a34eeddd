"""The storage of the collected static files (`DJANGO_STATIC_MANIFEST=1`, the container image)."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Content-hashed names with gzip copies, as WhiteNoise makes them, and the imports between
    the chat's JavaScript modules (`import … from "./socket.js"`) rewritten to those names too.
    Otherwise a page loads its hashed entry module, cached for ever, and then the modules it
    imports under their plain names, cached briefly: after a deploy a browser or CDN could mix
    the new entry module with the previous release's modules."""

    support_js_module_import_aggregation = True
