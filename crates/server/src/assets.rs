//! The web folder (`web/templates`, `web/static`): embedded in the binary, or read from `DASHBOARD_WEB_DIR`.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use include_dir::{Dir, include_dir};

static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../web");

/// Where templates and static files come from.
#[derive(Clone, Debug)]
pub enum WebSource {
    /// The copy embedded at build time.
    Embedded,
    /// A folder on disk, holding `templates/` and `static/`; with `reload`, templates are re-read on every page.
    Disk {
        /// The folder.
        dir: PathBuf,
        /// Re-read templates on every render (debug).
        reload: bool,
    },
}

impl WebSource {
    /// The source for these settings: `DASHBOARD_WEB_DIR` if set; in debug, the source tree's `web/` if present, so
    /// template edits show without a rebuild; else the embedded copy.
    pub fn choose(web_dir: Option<&Path>, debug: bool) -> Self {
        if let Some(dir) = web_dir {
            return Self::Disk { dir: dir.to_owned(), reload: debug };
        }
        let source_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
        if debug && source_tree.is_dir() {
            return Self::Disk { dir: source_tree, reload: true };
        }
        Self::Embedded
    }
}

/// The page templates.
pub struct Templates {
    tera: RwLock<tera::Tera>,
    reload: bool,
}

impl Templates {
    /// Loads every template of the source; a broken template stops start-up with its name and line.
    pub fn load(source: &WebSource) -> Result<Self, tera::Error> {
        let (tera, reload) = match source {
            WebSource::Embedded => {
                let mut tera = tera::Tera::default();
                let templates =
                    WEB.get_dir("templates").map(|dir| embedded_files(dir, "templates/")).unwrap_or_default();
                tera.add_raw_templates(templates)?;
                (tera, false)
            }
            WebSource::Disk { dir, reload } => {
                let pattern = format!("{}/templates/**/*", dir.display());
                (tera::Tera::new(&pattern)?, *reload)
            }
        };
        let mut templates = Self { tera: RwLock::new(tera), reload };
        templates.configure();
        Ok(templates)
    }

    fn configure(&mut self) {
        let tera = self.tera.get_mut().expect("template lock poisoned");
        tera.autoescape_on(vec![".html"]);
    }

    /// Renders a template; in reload mode it re-reads the templates first.
    pub fn render(&self, name: &str, context: &tera::Context) -> Result<String, tera::Error> {
        if self.reload {
            self.tera.write().expect("template lock poisoned").full_reload()?;
        }
        self.tera.read().expect("template lock poisoned").render(name, context)
    }
}

/// `(name relative to the folder, text)` of every text file below an embedded folder.
fn embedded_files(dir: &'static Dir<'static>, prefix: &str) -> Vec<(String, &'static str)> {
    let mut files = Vec::new();
    for file in dir.files() {
        if let (Some(text), Some(path)) = (file.contents_utf8(), file.path().to_str()) {
            files.push((path.trim_start_matches(prefix).to_owned(), text));
        }
    }
    for sub in dir.dirs() {
        files.extend(embedded_files(sub, prefix));
    }
    files
}

/// Serves `/static/{path}` from the chosen source.
pub async fn serve_static(source: web::Data<WebSource>, path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    if path.split('/').any(|part| part == ".." || part.is_empty()) {
        return HttpResponse::NotFound().finish();
    }
    let extension = Path::new(&path).extension().and_then(|ext| ext.to_str()).unwrap_or("");
    let content_type = actix_files::file_extension_to_mime(extension);
    let body = match source.get_ref() {
        WebSource::Embedded => WEB.get_file(format!("static/{path}")).map(|file| file.contents().to_vec()),
        WebSource::Disk { dir, .. } => std::fs::read(dir.join("static").join(&path)).ok(),
    };
    let cache = match source.get_ref() {
        WebSource::Embedded => "public, max-age=300",
        WebSource::Disk { .. } => "no-cache",
    };
    match body {
        Some(body) => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CACHE_CONTROL, cache))
            .body(body),
        None => HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("not found"),
    }
}
