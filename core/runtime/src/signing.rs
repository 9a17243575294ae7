//! Signatures of governed artifacts (Section 3): Ed25519 over the text of a content id,
//! hex-encoded, verified against the keys an installation trusts. Policies and releases
//! sign and verify the same way, here.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
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
        .ok_or_else(|| format!("the signing key `{}` is not an Ed25519 key in hex", signature.signer))?;
    if !trusted.contains(&signer) {
        return Err(format!("the signing key {} is not trusted", signature.signer));
    }
    let bytes = hex::decode(&signature.signature)
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or_else(|| "the signature is not 64 bytes of hex".to_owned())?;
    signer
        .verify(content_id.to_string().as_bytes(), &bytes)
        .map_err(|_| format!("the signature does not verify for {content_id}: the artifact changed after it was signed, or another key signed it"))
}
