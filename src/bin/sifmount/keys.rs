//! Loading a private key given with `--key`, and the password of an encrypted one (the
//! man page, SIGNING): `COSIGN_PASSWORD` when it is set (empty allowed, as cosign takes
//! it), else a prompt on the terminal without echo, else an error saying to set it.

use std::io::IsTerminal as _;
use std::path::Path;

use sifmount::cosign::{read_key_file, KeyError, SigningKey};
use zeroize::Zeroizing;

use crate::fatal::Fatal;

/// The variable cosign and SingularityCE read a key's password from.
pub const PASSWORD_VARIABLE: &str = "COSIGN_PASSWORD";

/// Whether the file at `path` is a PEM private key (of any kind), so that `--key` can take
/// a public or a private key. Unreadable files say no: loading them as public keys then
/// reports the problem.
pub fn is_private_key_file(path: &Path) -> bool {
    read_key_file(path).is_ok_and(|pem| SigningKey::is_private_pem(&pem))
}

/// Reads the private key at `path`, asking for its password when it is encrypted. Every
/// problem is one line naming the file.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, Fatal> {
    let name = path.display().to_string();
    let key_error = |e: KeyError| Fatal::failure(e.to_string());
    let pem = read_key_file(path).map_err(key_error)?;
    let password = if SigningKey::is_encrypted_pem(&pem) {
        Some(password_for(&name)?)
    } else {
        None
    };
    SigningKey::from_pem(&name, &pem, password.as_ref().map(|p| p.as_slice())).map_err(key_error)
}

fn password_for(name: &str) -> Result<Zeroizing<Vec<u8>>, Fatal> {
    if let Some(value) = std::env::var_os(PASSWORD_VARIABLE) {
        use std::os::unix::ffi::OsStringExt as _;
        return Ok(Zeroizing::new(value.into_vec()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Fatal::failure(format!(
            "{name}: the key is encrypted and there is no terminal to ask for its password: \
             set {PASSWORD_VARIABLE} (empty for a key without one)"
        )));
    }
    rpassword::prompt_password(format!("Enter password for private key {name}: "))
        .map(|p| Zeroizing::new(p.into_bytes()))
        .map_err(|e| Fatal::failure(format!("{name}: cannot read the password: {e}")))
}
