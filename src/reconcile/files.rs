//! TEMPORARY stand-in for `crate::store::files` until the compile branch lands; deleted on
//! merge.

use std::fmt;
use std::path::Path;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Deserialize;

use crate::store::Objects;
use crate::store::kube::{KubeObject, key_of};

/// Why a directory could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("reading {path}")]
pub struct LoadError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// A skipped document.
#[derive(Debug)]
pub struct LoadDiagnostic(String);

impl fmt::Display for LoadDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Load every YAML document under `dir`.
pub fn load_dir(dir: &Path) -> Result<(Objects, Vec<LoadDiagnostic>), LoadError> {
    let mut objects = Objects::default();
    let mut diags = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| LoadError {
            path: d.display().to_string(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError {
                path: path.display().to_string(),
                source,
            })?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value = match serde_json::Value::deserialize(doc) {
                    Ok(v) if v.is_null() => continue,
                    Ok(v) => v,
                    Err(e) => {
                        diags.push(LoadDiagnostic(format!("{}: {e}", path.display())));
                        continue;
                    }
                };
                let kind = value
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or("")
                    .to_owned();
                let object = match kind.as_str() {
                    "Ingress" => serde_json::from_value::<Ingress>(value).map(KubeObject::Ingress),
                    "IngressClass" => {
                        serde_json::from_value::<IngressClass>(value).map(KubeObject::IngressClass)
                    }
                    "Service" => serde_json::from_value::<Service>(value).map(KubeObject::Service),
                    "EndpointSlice" => serde_json::from_value::<EndpointSlice>(value)
                        .map(KubeObject::EndpointSlice),
                    "Secret" => serde_json::from_value::<Secret>(value).map(KubeObject::Secret),
                    _ => continue,
                };
                match object {
                    Ok(mut o) => {
                        default_namespace(&mut o);
                        let _ = key_of;
                        o.insert_into(&mut objects);
                    }
                    Err(e) => diags.push(LoadDiagnostic(format!("{}: {e}", path.display()))),
                }
            }
        }
    }
    Ok((objects, diags))
}

fn default_namespace(o: &mut KubeObject) {
    let meta = match o {
        KubeObject::Ingress(x) => &mut x.metadata,
        KubeObject::IngressClass(_) => return,
        KubeObject::Service(x) => &mut x.metadata,
        KubeObject::EndpointSlice(x) => &mut x.metadata,
        KubeObject::Secret(x) => &mut x.metadata,
    };
    meta.namespace.get_or_insert_with(|| "default".to_owned());
}
