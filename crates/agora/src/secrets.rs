//! Passwords from files (Docker or Kubernetes secrets) instead of the
//! command line or the environment: `--database-password-file` and
//! `--amqp-password-file` put the file's content into the connection URL
//! (`scheme://user@host/…` becomes `scheme://user:password@host/…`), so a
//! deployment file names the secret, never the password.

use std::path::Path;

/// The secret in `path`: its content without the line break that editors
/// and `echo` leave at the end.
pub fn read(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the secret {}: {e}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!secret.is_empty(), "the secret {} is empty", path.display());
    Ok(secret)
}

/// `url` with its password set to `password` (percent-encoded), replacing
/// any it had; `url` must name a user.
pub fn with_password(url: &str, password: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow::anyhow!("`{url}` is not a URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, host) = authority
        .rsplit_once('@')
        .ok_or_else(|| anyhow::anyhow!("the URL names no user to give the password to"))?;
    let user = userinfo.split(':').next().unwrap_or(userinfo);
    let encoded: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    Ok(format!("{scheme}://{user}:{encoded}@{host}{path}"))
}

/// `url`, with the password in `file` if one is given.
pub fn url_with_password_file(url: &str, file: Option<&Path>) -> anyhow::Result<String> {
    match file {
        Some(file) => with_password(url, &read(file)?),
        None => Ok(url.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_goes_into_the_url_encoded_and_replaces_any_other() {
        assert_eq!(
            with_password(
                "postgres://agora_order@postgres:5432/agora_order",
                "s3cr/t@:x"
            )
            .unwrap(),
            "postgres://agora_order:s3cr%2Ft%40%3Ax@postgres:5432/agora_order"
        );
        assert_eq!(
            with_password("amqp://agora:old@rabbitmq:5672/%2f", "new").unwrap(),
            "amqp://agora:new@rabbitmq:5672/%2f"
        );
        assert!(with_password("postgres://postgres-host/db", "x").is_err());
    }

    #[test]
    fn a_secret_file_loses_its_final_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "hunter2\n").unwrap();
        assert_eq!(read(&path).unwrap(), "hunter2");
        std::fs::write(&path, "\n").unwrap();
        assert!(read(&path).is_err());
    }
}
