//! Signatures of governed artifacts (Section 3): Ed25519 over the text of a content id,
//! hex-encoded, verified against the keys an installation trusts; and the pins a promotion
//! must match. Policies and releases sign, verify and check pins the same way, here.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use ops_core::governance::Pins;
use ops_core::id::ContentId;
use ops_core::supply_chain::SignatureRef;

/// Signs a governed artifact's content id.
pub fn sign(content_id: &ContentId, key: &SigningKey) -> SignatureRef {
    SignatureRef {
        signature: hex::encode(key.sign(content_id.to_string().as_bytes()).to_bytes()),
        signer: hex::encode(key.verifying_key().as_bytes()),
    }
}

/// Whether `signature` is a trusted key's over `content_id`; the error says why not.
pub fn verify(
    content_id: &ContentId,
    signature: &SignatureRef,
    trusted: &[VerifyingKey],
) -> Result<(), String> {
    let signer = hex::decode(&signature.signer)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        .ok_or_else(|| {
            format!(
                "the signing key `{}` is not an Ed25519 key in hex",
                signature.signer
            )
        })?;
    if !trusted.contains(&signer) {
        return Err(format!(
            "the signing key {} is not trusted",
            signature.signer
        ));
    }
    let bytes = hex::decode(&signature.signature)
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or_else(|| "the signature is not 64 bytes of hex".to_owned())?;
    signer
        .verify(content_id.to_string().as_bytes(), &bytes)
        .map_err(|_| format!("the signature does not verify for {content_id}: the artifact changed after it was signed, or another key signed it"))
}

/// What an installation trusts when it promotes an artifact: the keys whose signatures
/// activate, and what it runs, which the artifact's pins must match.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub keys: Vec<VerifyingKey>,
    /// The core version and each contract module's version of this host.
    pub environment: Pins,
}

impl Trust {
    pub fn verify(&self, content_id: &ContentId, signature: &SignatureRef) -> Result<(), String> {
        verify(content_id, signature, &self.keys)
    }

    /// Why `pins` do not match what this host runs, if they do not. Models and tools are
    /// not the host's: the model-change impact check answers for them.
    pub fn pin_mismatch(&self, pins: &Pins) -> Option<String> {
        let running = &self.environment;
        if !pins.core_version.is_empty() && pins.core_version != running.core_version {
            return Some(format!(
                "it pins ops-core {}, this host runs {}",
                pins.core_version, running.core_version
            ));
        }
        pins.contracts
            .iter()
            .find_map(|(module, version)| match running.contracts.get(module) {
                Some(ours) if ours == version => None,
                Some(ours) => Some(format!(
                    "it pins contract module `{module}` {version}, this host runs {ours}"
                )),
                None => Some(format!(
                    "it pins contract module `{module}` {version}, which this host does not have"
                )),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust() -> Trust {
        Trust {
            keys: vec![],
            environment: Pins {
                core_version: "0.1.3".to_owned(),
                contracts: [("ops-contract-incidents".to_owned(), "0.1.0".to_owned())].into(),
                tools: Default::default(),
            },
        }
    }

    fn pins(core: &str, contracts: &[(&str, &str)]) -> Pins {
        Pins {
            core_version: core.to_owned(),
            contracts: contracts
                .iter()
                .map(|(module, version)| ((*module).to_owned(), (*version).to_owned()))
                .collect(),
            tools: [("a-model".to_owned(), "1".to_owned())].into(),
        }
    }

    #[test]
    fn pins_must_name_what_the_host_runs() {
        let trust = trust();
        assert_eq!(
            trust.pin_mismatch(&pins("0.1.3", &[("ops-contract-incidents", "0.1.0")])),
            None
        );
        assert_eq!(trust.pin_mismatch(&pins("", &[])), None, "nothing pinned");
        assert_eq!(
            trust.pin_mismatch(&pins("0.1.2", &[])).as_deref(),
            Some("it pins ops-core 0.1.2, this host runs 0.1.3")
        );
        assert_eq!(
            trust
                .pin_mismatch(&pins("0.1.3", &[("ops-contract-incidents", "0.2.0")]))
                .as_deref(),
            Some("it pins contract module `ops-contract-incidents` 0.2.0, this host runs 0.1.0")
        );
        assert_eq!(
            trust
                .pin_mismatch(&pins("0.1.3", &[("ops-contract-crm", "1.0.0")]))
                .as_deref(),
            Some("it pins contract module `ops-contract-crm` 1.0.0, which this host does not have")
        );
    }

    #[test]
    fn a_signature_verifies_only_for_its_content_and_a_trusted_key() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let id = ContentId::of("an artifact").expect("canonical");
        let trust = Trust {
            keys: vec![key.verifying_key()],
            ..Trust::default()
        };
        assert_eq!(trust.verify(&id, &sign(&id, &key)), Ok(()));
        let elsewhere = ContentId::of("another artifact").expect("canonical");
        assert!(
            trust
                .verify(&elsewhere, &sign(&id, &key))
                .unwrap_err()
                .contains("does not verify")
        );
        assert!(
            trust
                .verify(&id, &sign(&id, &other))
                .unwrap_err()
                .contains("is not trusted")
        );
        let garbled = SignatureRef {
            signature: "zz".to_owned(),
            ..sign(&id, &key)
        };
        assert!(
            trust
                .verify(&id, &garbled)
                .unwrap_err()
                .contains("not 64 bytes of hex")
        );
    }
}
