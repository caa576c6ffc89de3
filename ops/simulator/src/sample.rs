//! One sample event, published as a worker would.

use rakuda_schema::{Action, Channel, RealTimeEvent};
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("unknown channel `{0}`: use one of inventory, orders, pricing, listings")]
    UnknownChannel(String),
    #[error("unknown action `{0}`: use created, updated or deleted")]
    UnknownAction(String),
    #[error("--data must be a JSON object, e.g. '{{\"isAvailable\":false}}': {0}")]
    BadData(String),
    #[error("cannot publish to redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A sample event for a channel, stamped now.
pub fn sample_event(
    channel: &str,
    id: &str,
    action: &str,
    data: Option<&str>,
) -> Result<(&'static Channel, RealTimeEvent), SampleError> {
    let channel = Channel::by_name(channel)
        .filter(|c| !c.internal)
        .ok_or_else(|| SampleError::UnknownChannel(channel.to_owned()))?;
    let action =
        Action::from_wire(action).ok_or_else(|| SampleError::UnknownAction(action.to_owned()))?;
    let mut event = RealTimeEvent::now(channel.event_type, id, action);
    if let Some(data) = data {
        match serde_json::from_str::<Value>(data) {
            Ok(Value::Object(object)) => event = event.with_data(object),
            Ok(_) => return Err(SampleError::BadData("not an object".into())),
            Err(error) => return Err(SampleError::BadData(error.to_string())),
        }
    } else {
        event = event.with_data(default_data(channel));
    }
    Ok((channel, event))
}

/// Publishes `event` on its channel; returns the JSON sent and how many subscribers got it.
pub async fn publish(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    channel: &Channel,
    event: &RealTimeEvent,
) -> Result<(String, i64), SampleError> {
    // Serializing our own well-formed types cannot fail.
    let json = serde_json::to_string(event).unwrap_or_default();
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(channel.redis_channel(prefix))
        .arg(&json)
        .query_async(redis)
        .await?;
    Ok((json, receivers))
}

/// Plausible `data` for each channel, so a sample looks like what the workers send.
fn default_data(channel: &Channel) -> Map<String, Value> {
    let value = match channel.name {
        "inventory" => {
            serde_json::json!({ "isAvailable": false, "stock": 0, "source": "inventory-checker" })
        }
        "orders" => {
            serde_json::json!({ "marketplace": "ebay", "total": 129.99, "currency": "USD" })
        }
        "pricing" => serde_json::json!({ "oldPrice": 120.0, "newPrice": 114.5, "currency": "USD" }),
        _ => serde_json::json!({ "status": "ACTIVE" }),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_validate_against_the_schema() {
        for channel in ["inventory", "orders", "pricing", "listings"] {
            let (chan, event) = sample_event(channel, "x_1", "updated", None).expect("sample");
            let json = serde_json::to_vec(&event).expect("json");
            assert!(
                rakuda_schema::validate(chan.name, &json).is_ok(),
                "{channel}"
            );
        }
    }

    #[test]
    fn bad_arguments_are_named() {
        assert!(matches!(
            sample_event("canary", "x", "updated", None),
            Err(SampleError::UnknownChannel(_))
        ));
        assert!(matches!(
            sample_event("orders", "x", "shipped", None),
            Err(SampleError::UnknownAction(_))
        ));
        assert!(matches!(
            sample_event("orders", "x", "created", Some("[1]")),
            Err(SampleError::BadData(_))
        ));
    }
}
