//! `subkeys/:path`: the shape of a version's data without its values (leaves become
//! `null`), down to `depth` levels (0 = all).

use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::framework::{Ctx, FieldData, Path, PathHandler, field};
use lessor_core::logical::{Operation, Response, obj};
use lessor_core::{Error, Result};
use serde_json::{Map, Value};

use super::path_data::gone;
use super::store::{Lookup, State, lookup};

pub fn path(state: &Arc<State>) -> Path {
    Path::new("subkeys/(?P<path>.*)", Arc::new(Subkeys(state.clone())))
        .fields(vec![
            field::str("path", "Location of the secret."),
            field::int("version", "Version to read; 0 or absent means the latest."),
            field::int("depth", "Levels of nesting to return; 0 means all."),
        ])
        .ops(&[Operation::Read])
        .help("Reads the key structure of a secret version without its values.")
}

struct Subkeys(Arc<State>);

#[async_trait]
impl PathHandler for Subkeys {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let path = d.string("path");
        let version = d.int("version").unwrap_or(0);
        // A negative depth means no limit, like 0.
        let depth = usize::try_from(d.int("depth").unwrap_or(0)).unwrap_or(0);
        match lookup(ctx.storage, &path, version, self.0.now()).await? {
            Lookup::Missing => Err(Error::NotFound),
            Lookup::Gone { meta, n, vm } => Ok(Some(gone(obj([
                ("metadata", Value::Object(meta.version_json(n, &vm))),
                ("subkeys", Value::Null),
            ])))),
            Lookup::Live { meta, n, vm, data } => Ok(Some(Response::data(obj([
                ("metadata", Value::Object(meta.version_json(n, &vm))),
                ("subkeys", Value::Object(subkeys(&data, depth, 1))),
            ])))),
        }
    }
}

/// Keys of `data` at nesting `level` (1 = top); objects recurse until `depth` is reached.
fn subkeys(data: &Map<String, Value>, depth: usize, level: usize) -> Map<String, Value> {
    data.iter()
        .map(|(k, v)| {
            let shape = match v {
                Value::Object(inner) if depth == 0 || level < depth => {
                    Value::Object(subkeys(inner, depth, level + 1))
                }
                _ => Value::Null,
            };
            (k.clone(), shape)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_limits_nesting() {
        let data = json!({"a": {"b": {"c": 1}, "d": 2}, "e": "x", "f": {}});
        let m = data.as_object().unwrap();
        assert_eq!(
            Value::Object(subkeys(m, 0, 1)),
            json!({"a": {"b": {"c": null}, "d": null}, "e": null, "f": {}})
        );
        assert_eq!(
            Value::Object(subkeys(m, 1, 1)),
            json!({"a": null, "e": null, "f": null})
        );
        assert_eq!(
            Value::Object(subkeys(m, 2, 1)),
            json!({"a": {"b": null, "d": null}, "e": null, "f": {}})
        );
    }
}
