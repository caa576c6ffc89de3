//! The built dashboard (`GATEWAY_DASHBOARD_DIR`) at `/`, with its client-side routes falling
//! back to `index.html`. Only the directory's own visible files are served: a path with a
//! dotfile segment (`/.env`), an empty segment (`//evil.example`, which a redirect would turn
//! into a link to another host) or a backslash is refused, and so is a symlink that resolves
//! outside the directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use percent_encoding::percent_decode_str;
use rakuda_schema::RequestRefusal;
use tower_http::services::{ServeDir, ServeFile};

use super::error::Refusals;

struct Root {
    dir: PathBuf,
    /// `dir` with its symlinks resolved, to compare resolved paths against.
    resolved: PathBuf,
    refusals: Refusals,
}

/// `router` with the dashboard in `dir` behind every path it does not route.
pub(crate) fn serve(router: Router, dir: &Path, refusals: Refusals) -> Router {
    let root = Arc::new(Root {
        dir: dir.to_owned(),
        resolved: dir.canonicalize().unwrap_or_else(|_| dir.to_owned()),
        refusals,
    });
    let files = Router::new()
        .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html"))))
        .layer(axum::middleware::from_fn_with_state(root, only_own_files));
    router.fallback_service(files)
}

async fn only_own_files(State(root): State<Arc<Root>>, request: Request, next: Next) -> Response {
    let allowed = match percent_decode_str(request.uri().path()).decode_utf8() {
        Ok(path) => is_plain(&path) && stays_inside(&root, &path).await,
        Err(_) => false,
    };
    if !allowed {
        return root
            .refusals
            .refuse(
                StatusCode::NOT_FOUND,
                RequestRefusal::BadRequest,
                "no such file",
            )
            .into_response();
    }
    next.run(request).await
}

/// No hidden segment, no empty segment (but the leading and a trailing `/`), no backslash.
fn is_plain(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    !path.contains('\\')
        && !path.contains('\0')
        && (rest.is_empty()
            || rest
                .split('/')
                .all(|segment| !segment.is_empty() && !segment.starts_with('.')))
}

/// The file the path names, symlinks resolved, is inside the directory (or does not exist, in
/// which case `index.html` is served).
async fn stays_inside(root: &Root, path: &str) -> bool {
    let candidate = root.dir.join(path.trim_start_matches('/'));
    match tokio::fs::canonicalize(&candidate).await {
        Ok(resolved) => resolved.starts_with(&root.resolved),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_empty_and_backslash_segments_are_not_plain() {
        for good in ["/", "/index.html", "/assets/app.js", "/orders/", "/a/b"] {
            assert!(is_plain(good), "{good}");
        }
        for bad in [
            "/.env",
            "/assets/.secret",
            "/..",
            "//evil.example",
            "/a//b",
            "/\\evil.example",
            "relative",
        ] {
            assert!(!is_plain(bad), "{bad}");
        }
    }
}
