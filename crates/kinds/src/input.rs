//! A property that is known when rendering, or only once another resource exists.

use reconciler_engine::model::reference;
use reconciler_engine::provider::ProviderError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A value render knows (`Known`), or one the engine fills in just before the call: an
/// output of another resource (`{"$ref": id, "attr": name}`) or text joined from strings and
/// such outputs (`{"$join": [...]}`). A client reads it with [`Input::get`], which fails only
/// when the engine did not resolve it, a bug rather than an AWS condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<T> {
    /// Known at render time (or resolved).
    Known(T),
    /// A `$ref` or `$join`, as the engine writes and resolves them.
    Pending(Value),
}

impl<T> Input<T> {
    /// The output `attr` of resource `id`.
    pub fn output(id: &str, attr: &str) -> Self {
        Input::Pending(reference(id, attr))
    }

    /// Text joined from literal strings and outputs, in order.
    pub fn join(parts: Vec<Value>) -> Self {
        Input::Pending(serde_json::json!({ reconciler_engine::model::JOIN_KEY: parts }))
    }

    /// The value, once resolved; `field` names it in the error.
    pub fn get(&self, field: &str) -> Result<&T, ProviderError> {
        match self {
            Input::Known(v) => Ok(v),
            Input::Pending(v) => Err(ProviderError::terminal(format!(
                "`{field}` is still unresolved ({v}); the engine resolves references before \
                 calling AWS"
            ))),
        }
    }

    /// The value when known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Input::Known(v) => Some(v),
            Input::Pending(_) => None,
        }
    }
}

impl<T> From<T> for Input<T> {
    fn from(value: T) -> Self {
        Input::Known(value)
    }
}

impl From<&str> for Input<String> {
    fn from(value: &str) -> Self {
        Input::Known(value.to_string())
    }
}

impl<T: Serialize> Serialize for Input<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Input::Known(v) => v.serialize(serializer),
            Input::Pending(v) => v.serialize(serializer),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Input<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if is_pending(&value) {
            return Ok(Input::Pending(value));
        }
        serde_json::from_value(value)
            .map(Input::Known)
            .map_err(serde::de::Error::custom)
    }
}

/// Whether `value` is a reference or a join the engine resolves.
fn is_pending(value: &Value) -> bool {
    value.as_object().is_some_and(|m| {
        m.contains_key("$ref") || m.contains_key(reconciler_engine::model::JOIN_KEY)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_values_and_references_round_trip() {
        let known: Input<String> = serde_json::from_value(json!("vpc-1")).unwrap();
        assert_eq!(known.get("vpcId").unwrap(), "vpc-1");
        let pending: Input<String> =
            serde_json::from_value(json!({ "$ref": "ec2.vpc/main", "attr": "id" })).unwrap();
        assert_eq!(pending, Input::output("ec2.vpc/main", "id"));
        let err = pending.get("vpcId").unwrap_err();
        assert!(err.message.contains("`vpcId` is still unresolved"), "{err}");
        assert_eq!(
            serde_json::to_value(&pending).unwrap(),
            json!({ "$ref": "ec2.vpc/main", "attr": "id" })
        );
        let list: Input<Vec<String>> = serde_json::from_value(json!(["a", "b"])).unwrap();
        assert_eq!(list.known().unwrap().len(), 2);
    }

    #[test]
    fn a_wrong_type_is_an_error_not_a_reference() {
        assert!(serde_json::from_value::<Input<String>>(json!(3)).is_err());
        assert!(serde_json::from_value::<Input<String>>(json!({ "id": 1 })).is_err());
    }
}
