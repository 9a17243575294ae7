// Even inside the host, a secret value cannot be printed, formatted or serialized, and an
// access token shows only its id.
use ops_core_runtime::secrets::{AccessToken, SecretValue};

fn show(value: &SecretValue) -> String {
    format!("{value:?} {value}")
}

fn send(value: &SecretValue, token: &AccessToken) -> String {
    serde_json::to_string(value).unwrap() + &serde_json::to_string(token).unwrap()
}

fn main() {}
