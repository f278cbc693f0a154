//! The file source: a directory of Kubernetes manifests, read the way `kubectl apply -f DIR -R`
//! reads it.
//!
//! Files ending in `.yaml`, `.yml` or `.json` are read recursively in path order. As kubectl
//! (Go's `filepath.Walk`), a symlink to a file is read but a symlink to a directory is not
//! followed, so a symlink cycle cannot loop; dotfiles are read. One exception, for ConfigMap
//! and Secret volumes: entries whose name starts with `..` are skipped. The kubelet projects
//! such a volume as `..2026_12_01_…/` (the data), `..data -> ..2026_12_01_…` (swapped
//! atomically on update) and top-level symlinks `a.yaml -> ..data/a.yaml`; the `..` names are
//! reserved for it, and skipping them loads each document once, through its top-level link,
//! where kubectl would read it twice. A YAML file
//! may hold several `---`-separated documents, a JSON file a stream of values. `List` kinds
//! (`v1/List`, `IngressList`, …) are unpacked. Kinds weir does not keep are skipped (debug
//! log). A document that does not parse, or parses into an invalid object, becomes a
//! [`LoadDiagnostic`] with file, document index and line, and is skipped: the rest of the
//! directory still loads. Only an unreadable directory is an error ([`LoadError`]).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Applied, Kind, KubeObject, Objects};

/// Why the manifests could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory (or file) given cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path given.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// A document (or file) that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadDiagnostic {
    /// The file.
    pub file: PathBuf,
    /// Index of the document in the file (0-based, counting non-empty documents; list items
    /// share their list's index).
    pub document_index: usize,
    /// 1-based line of the error when known, else of the document's start.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for LoadDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, " (document {}): {}", self.document_index, self.reason)
    }
}

/// Load every manifest under `dir` (or the single file `dir`).
pub fn load_dir(dir: &Path) -> Result<(Objects, Vec<LoadDiagnostic>), LoadError> {
    load(dir, false).map(|(objects, diagnostics, _)| (objects, diagnostics))
}

/// [`load_dir`], also returning the documents the store does not keep — of kinds it does not
/// know, or that it drops (e.g. ingress-nginx's controller ConfigMap, for `weir migrate`) —
/// as parsed.
pub fn load_dir_with_others(
    dir: &Path,
) -> Result<(Objects, Vec<LoadDiagnostic>, Vec<Value>), LoadError> {
    load(dir, true)
}

fn load(
    dir: &Path,
    keep_others: bool,
) -> Result<(Objects, Vec<LoadDiagnostic>, Vec<Value>), LoadError> {
    let read_error = |source| LoadError::Read {
        path: dir.to_owned(),
        source,
    };
    let meta = std::fs::metadata(dir).map_err(read_error)?;
    let mut diagnostics = Vec::new();
    let mut files = Vec::new();
    if meta.is_file() {
        files.push(dir.to_owned());
    } else {
        std::fs::read_dir(dir).map_err(read_error)?;
        collect_files(dir, &mut files, &mut diagnostics);
    }
    files.sort();
    let mut loader = Loader {
        objects: Objects::default(),
        diagnostics,
        others: keep_others.then(Vec::new),
    };
    for file in &files {
        loader.load_file(file);
    }
    Ok((
        loader.objects,
        loader.diagnostics,
        loader.others.unwrap_or_default(),
    ))
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>, diagnostics: &mut Vec<LoadDiagnostic>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            diagnostics.push(LoadDiagnostic {
                file: dir.to_owned(),
                document_index: 0,
                line: None,
                reason: format!("cannot read directory: {error}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        // The kubelet's atomic-writer internals of a ConfigMap or Secret volume (`..data`,
        // `..2026_12_01_…`): the top-level symlinks into them are what gets read.
        if entry.file_name().as_encoded_bytes().starts_with(b"..") {
            continue;
        }
        let path = entry.path();
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(error) => {
                diagnostics.push(cannot_read(path, &error));
                continue;
            }
        };
        // `file_type` does not follow symlinks: a symlinked directory is not walked (as
        // kubectl's `filepath.Walk`), so no cycle can make this recurse forever.
        if file_type.is_dir() {
            collect_files(&path, files, diagnostics);
            continue;
        }
        if !is_manifest(&path) {
            continue;
        }
        if !file_type.is_symlink() {
            files.push(path);
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                tracing::debug!(path = %path.display(), "not following a symlink to a directory");
            }
            Ok(_) => files.push(path),
            Err(error) => diagnostics.push(cannot_read(path, &error)),
        }
    }
}

fn cannot_read(file: PathBuf, error: &std::io::Error) -> LoadDiagnostic {
    LoadDiagnostic {
        file,
        document_index: 0,
        line: None,
        reason: format!("cannot read: {error}"),
    }
}

/// One document of a file: where it starts and its text, parsed only when it is loaded (so
/// a file of thousands of documents never holds all of them as trees at once).
struct Document<'a> {
    start_line: usize,
    parsed: Result<Body<'a>, (Option<usize>, String)>,
}

/// A document's text.
enum Body<'a> {
    Yaml(&'a str),
    Json(&'a RawValue),
}

/// The head of a JSON document that may be a `List`: its items stay text until each is
/// loaded in turn (a 10 MB `kubectl get -o json` list would otherwise be a tree of some
/// hundred megabytes while it loads).
#[derive(serde::Deserialize)]
struct JsonListHead<'a> {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

struct Loader {
    objects: Objects,
    diagnostics: Vec<LoadDiagnostic>,
    /// Documents of kinds the store does not keep, when asked for.
    others: Option<Vec<Value>>,
}

impl Loader {
    fn load_file(&mut self, file: &Path) {
        let text = match std::fs::read(file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    self.diagnose(file, 0, None, "file is not valid UTF-8".to_owned());
                    return;
                }
            },
            Err(error) => {
                self.diagnose(file, 0, None, format!("cannot read: {error}"));
                return;
            }
        };
        let documents = if file.extension().and_then(|e| e.to_str()) == Some("json") {
            json_documents(&text)
        } else {
            yaml_documents(&text)
        };
        let mut index = 0;
        for document in documents {
            let line = document.start_line;
            match document.parsed {
                Ok(Body::Yaml(body)) => match serde_yaml::from_str::<Value>(body) {
                    Ok(Value::Null) => continue,
                    Ok(value) => self.load_value(file, index, line, value, None),
                    Err(error) => {
                        let at = error.location().map(|l| line + l.line().saturating_sub(1));
                        let reason = format!("invalid YAML: {error}");
                        self.diagnose(file, index, at.or(Some(line)), reason);
                    }
                },
                Ok(Body::Json(raw)) => self.load_json(file, index, line, raw),
                Err((line, reason)) => self.diagnose(file, index, line, reason),
            }
            index += 1;
        }
    }

    /// A JSON document: a `List` item by item, anything else as one value.
    fn load_json(&mut self, file: &Path, index: usize, line: usize, raw: &RawValue) {
        if let Ok(head) = serde_json::from_str::<JsonListHead>(raw.get())
            && let Some(item_kind) = head.kind.strip_suffix("List")
        {
            for item in head.items {
                match serde_json::from_str::<Value>(item.get()) {
                    Ok(value) => {
                        let list_type = Some((head.api_version.as_str(), item_kind));
                        self.load_value(file, index, line, value, list_type);
                    }
                    Err(error) => self.diagnose(file, index, Some(line), error.to_string()),
                }
            }
            return;
        }
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(value) => self.load_value(file, index, line, value, None),
            Err(error) => self.diagnose(file, index, Some(line), error.to_string()),
        }
    }

    fn diagnose(
        &mut self,
        file: &Path,
        document_index: usize,
        line: Option<usize>,
        reason: String,
    ) {
        self.diagnostics.push(LoadDiagnostic {
            file: file.to_owned(),
            document_index,
            line,
            reason,
        });
    }

    /// `list_type`: apiVersion and item kind of the enclosing typed list, for items that
    /// omit them.
    fn load_value(
        &mut self,
        file: &Path,
        index: usize,
        line: usize,
        mut value: Value,
        list_type: Option<(&str, &str)>,
    ) {
        let Some(map) = value.as_object_mut() else {
            let reason = format!("document is not a mapping but {}", value_type(&value));
            self.diagnose(file, index, Some(line), reason);
            return;
        };
        if let Some((api_version, kind)) = list_type {
            map.entry("apiVersion")
                .or_insert_with(|| Value::String(api_version.to_owned()));
            map.entry("kind")
                .or_insert_with(|| Value::String(kind.to_owned()));
        }
        let api_version = map
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let kind = map.get("kind").and_then(Value::as_str).map(str::to_owned);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            let reason = "document has no apiVersion or kind".to_owned();
            self.diagnose(file, index, Some(line), reason);
            return;
        };
        if let Some(item_kind) = kind.strip_suffix("List") {
            match map.remove("items") {
                Some(Value::Array(items)) => {
                    for item in items {
                        let list_type = Some((api_version.as_str(), item_kind));
                        self.load_value(file, index, line, item, list_type);
                    }
                }
                Some(Value::Null) | None => {}
                Some(other) => {
                    let reason = format!("{kind}.items is not a list but {}", value_type(&other));
                    self.diagnose(file, index, Some(line), reason);
                }
            }
            return;
        }
        let Some(kind) = Kind::from_type(&api_version, &kind) else {
            tracing::debug!(file = %file.display(), index, api_version, kind, "ignoring kind");
            if let Some(others) = &mut self.others {
                others.push(value);
            }
            return;
        };
        // Kept for `weir migrate` when the store drops it (ingress-nginx's ConfigMap).
        let raw = self.others.is_some().then(|| value.clone());
        let object = match KubeObject::from_value(kind, value) {
            Ok(object) => object,
            Err(error) => {
                self.diagnose(file, index, Some(line), format!("invalid {kind}: {error}"));
                return;
            }
        };
        match self.objects.apply(object) {
            Ok(Applied::Stored {
                key,
                replaced: true,
            }) => {
                let reason =
                    format!("duplicate {kind} {key}: this definition replaces an earlier one");
                self.diagnose(file, index, Some(line), reason);
            }
            Ok(Applied::Stored { .. }) => {}
            Ok(Applied::Ignored { key }) => {
                // E.g. a Secret not of type kubernetes.io/tls.
                tracing::debug!(file = %file.display(), %kind, %key, "ignoring an object the store does not keep");
                if let (Some(others), Some(raw)) = (&mut self.others, raw) {
                    others.push(raw);
                }
            }
            Err(error) => self.diagnose(file, index, Some(line), error.to_string()),
        }
    }
}

fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Split a YAML stream on `---` lines (as kubectl's reader does), parse each non-empty
/// document on its own so that one bad document does not hide the others.
fn yaml_documents(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut start = 0usize; // byte offset of the current document
    let mut start_line = 1usize;
    let mut offset = 0usize;
    fn push<'a>(documents: &mut Vec<Document<'a>>, body: &'a str, start_line: usize) {
        if body
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return;
        }
        documents.push(Document {
            start_line,
            parsed: Ok(Body::Yaml(body)),
        });
    }
    for (line_no, line) in (1usize..).zip(text.split_inclusive('\n')) {
        let content = line.trim_end_matches(['\n', '\r']);
        let is_separator = content
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace));
        if is_separator {
            push(&mut documents, &text[start..offset], start_line);
            start = offset + line.len();
            start_line = line_no + 1;
        }
        offset += line.len();
    }
    push(&mut documents, &text[start..], start_line);
    documents
}

/// Parse a stream of JSON values; a syntax error ends the file (the stream cannot resync).
fn json_documents(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    loop {
        let start = stream.byte_offset();
        let start_line = 1
            + text[..start].matches('\n').count()
            + text[start..]
                .chars()
                .take_while(|c| c.is_whitespace())
                .filter(|&c| c == '\n')
                .count();
        match stream.next() {
            None => break,
            Some(Ok(raw)) => documents.push(Document {
                start_line,
                parsed: Ok(Body::Json(raw)),
            }),
            Some(Err(error)) => {
                documents.push(Document {
                    start_line,
                    parsed: Err((Some(error.line()), format!("invalid JSON: {error}"))),
                });
                break;
            }
        }
    }
    documents
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectKey;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    const SERVICE: &str =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  ports:\n  - port: 80\n";

    #[test]
    fn loads_multi_document_yaml_recursively_with_default_namespace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "---\n{SERVICE}---\n# only a comment\n---\n{}",
            SERVICE.replace("name: a", "name: b\n  namespace: x")
        );
        write(dir.path(), "sub/deeper/svc.yml", &text);
        write(dir.path(), "notes.txt", "not yaml: [");
        let (objects, diagnostics) = load_dir(dir.path()).expect("loads");
        assert_eq!(diagnostics, vec![]);
        let keys: Vec<_> = objects.services.keys().cloned().collect();
        assert_eq!(
            keys,
            vec![ObjectKey::new("default", "a"), ObjectKey::new("x", "b")]
        );
    }

    #[test]
    fn bad_document_is_reported_with_line_and_the_rest_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "{SERVICE}---\napiVersion: v1\nkind: Service\nmetadata: [unclosed\n---\n{}",
            SERVICE.replace("name: a", "name: c")
        );
        write(dir.path(), "m.yaml", &text);
        let (objects, diagnostics) = load_dir(dir.path()).expect("loads");
        assert_eq!(objects.services.len(), 2);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].document_index, 1);
        assert!(
            diagnostics[0].line.is_some_and(|l| (9..=12).contains(&l)),
            "{:?}",
            diagnostics[0]
        );
    }

    #[test]
    fn wrong_field_type_is_reported_at_document_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "{SERVICE}---\n{}",
            SERVICE.replace("port: 80", "port: eighty")
        );
        write(dir.path(), "m.yaml", &text);
        let (objects, diagnostics) = load_dir(dir.path()).expect("loads");
        assert_eq!(objects.services.len(), 1);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].line, Some(9));
        assert!(
            diagnostics[0].reason.contains("invalid Service"),
            "{}",
            diagnostics[0].reason
        );
    }

    #[test]
    fn json_lists_are_unpacked_and_other_kinds_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let json = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}},
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"}}]}
            {"apiVersion":"networking.k8s.io/v1","kind":"IngressClassList","items":[{"metadata":{"name":"weir"},"spec":{"controller":"weir.dev/ingress-controller"}}]}"#;
        write(dir.path(), "m.json", json);
        let (objects, diagnostics) = load_dir(dir.path()).expect("loads");
        assert_eq!(diagnostics, vec![]);
        assert_eq!(objects.services.len(), 1);
        assert!(
            objects
                .ingress_classes
                .contains_key(&ObjectKey::new("", "weir"))
        );
    }

    #[test]
    fn missing_kind_and_duplicates_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "a.yaml",
            &format!("{SERVICE}---\nmetadata:\n  name: x\n"),
        );
        write(dir.path(), "b.yaml", SERVICE);
        let (objects, diagnostics) = load_dir(dir.path()).expect("loads");
        assert_eq!(objects.services.len(), 1);
        let reasons: Vec<_> = diagnostics.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("no apiVersion or kind"));
        assert!(reasons[1].contains("duplicate Service default/a"));
    }

    #[test]
    fn symlink_cycles_end_and_symlinked_directories_are_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "sub/svc.yaml", SERVICE);
        let outside = tempfile::tempdir().expect("tempdir");
        write(
            outside.path(),
            "other.yaml",
            &SERVICE.replace("name: a", "name: outside"),
        );
        std::os::unix::fs::symlink("..", dir.path().join("sub/parent")).expect("symlink");
        std::os::unix::fs::symlink(".", dir.path().join("sub/self.yaml")).expect("symlink");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).expect("symlink");
        let (objects, diagnostics) = load_dir(dir.path()).expect("loads");
        assert_eq!(diagnostics, vec![]);
        let keys: Vec<_> = objects.services.keys().cloned().collect();
        assert_eq!(keys, vec![ObjectKey::new("default", "a")]);
    }

    /// The layout the kubelet gives a ConfigMap volume (`kubectl create configmap --from-file`).
    fn configmap_volume(dir: &Path, version: &str, files: &[(&str, &str)]) {
        let data = format!("..{version}");
        for (name, text) in files {
            write(&dir.join(&data), name, text);
        }
        std::os::unix::fs::symlink(&data, dir.join("..data")).expect("symlink ..data");
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name))
                .expect("symlink file");
        }
    }

    #[test]
    fn a_configmap_volume_loads_each_document_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        configmap_volume(
            dir.path(),
            "2026_12_01_20_00_00.123456789",
            &[
                ("a.yaml", SERVICE),
                ("b.yaml", &SERVICE.replace("name: a", "name: b")),
            ],
        );
        // A user's dotfile is read, as kubectl reads it.
        write(
            dir.path(),
            ".hidden.yaml",
            &SERVICE.replace("name: a", "name: hidden"),
        );
        let (objects, diagnostics) = load_dir(dir.path()).expect("loads");
        // A second copy of a document would be a "duplicate" diagnostic.
        assert_eq!(diagnostics, vec![]);
        let keys: Vec<_> = objects.services.keys().cloned().collect();
        assert_eq!(
            keys,
            vec![
                ObjectKey::new("default", "a"),
                ObjectKey::new("default", "b"),
                ObjectKey::new("default", "hidden"),
            ]
        );
    }

    #[test]
    fn a_dangling_manifest_symlink_is_a_diagnostic() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "svc.yaml", SERVICE);
        std::os::unix::fs::symlink("gone.yaml", dir.path().join("dangling.yaml")).expect("symlink");
        let (objects, diagnostics) = load_dir(dir.path()).expect("loads");
        assert_eq!(objects.services.len(), 1);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert!(diagnostics[0].file.ends_with("dangling.yaml"));
        assert!(diagnostics[0].reason.starts_with("cannot read"));
    }

    #[test]
    fn unreadable_directory_is_an_error() {
        let err = load_dir(Path::new("/nonexistent/weir-manifests")).expect_err("missing");
        assert!(matches!(err, LoadError::Read { .. }));
    }
}
