//! `cargo run -p schema-compat --example compare -- OLD NEW`: the report for two schemas
//! given as JSON text, for trying the engine by hand.

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [old, new] = arguments.as_slice() else {
        eprintln!("usage: compare OLD-JSON NEW-JSON");
        std::process::exit(2);
    };
    let parse = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text).unwrap_or_else(|error| {
            eprintln!("not JSON: {error}");
            std::process::exit(2);
        })
    };
    match schema_compat::compare(&parse(old), &parse(new)) {
        Ok(report) => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    }
}
