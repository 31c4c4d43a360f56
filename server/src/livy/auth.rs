//! Credentials for Livy: none, HTTP basic, or a bearer token read from an environment variable
//! or printed by a command (Synapse: `az account get-access-token --resource
//! https://dev.azuresynapse.net --query accessToken -o tsv`).

use std::fmt;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A token printed by a command is used for this long before the command runs again (Azure AD
/// tokens live an hour); a 401 answer makes it run again at once.
const COMMAND_TOKEN_TTL: Duration = Duration::from_secs(10 * 60);
/// A token command that has not finished after this long is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub enum Auth {
    None,
    Basic { user: String, password: String },
    Bearer(TokenSource),
}

#[derive(Clone)]
pub enum TokenSource {
    /// The token is the value of this environment variable.
    Env(String),
    /// The token is what this shell command prints on stdout (trimmed).
    Command(String),
    /// The token itself (the embedded local endpoint's per-process token).
    Value(String),
}

impl fmt::Debug for TokenSource {
    /// Never prints a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Env(var) => write!(f, "Env({var})"),
            TokenSource::Command(command) => write!(f, "Command({command})"),
            TokenSource::Value(_) => f.write_str("Value(hidden)"),
        }
    }
}

impl fmt::Debug for Auth {
    /// Never prints a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Basic { user, .. } => write!(f, "Auth::Basic({user}, password hidden)"),
            Auth::Bearer(source) => write!(f, "Auth::Bearer({source:?})"),
        }
    }
}

/// Applies an [`Auth`] to requests, caching command tokens.
pub(crate) struct Authenticator {
    auth: Auth,
    cached: Mutex<Option<(String, Instant)>>,
}

impl Authenticator {
    pub(crate) fn new(auth: Auth) -> Self {
        Authenticator {
            auth,
            cached: Mutex::new(None),
        }
    }

    pub(crate) async fn apply(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, String> {
        match &self.auth {
            Auth::None => Ok(request),
            Auth::Basic { user, password } => Ok(request.basic_auth(user, Some(password))),
            Auth::Bearer(TokenSource::Env(var)) => match std::env::var(var) {
                Ok(token) if !token.trim().is_empty() => Ok(request.bearer_auth(token.trim())),
                _ => Err(format!(
                    "the environment variable {var} that should hold the Livy token is unset or empty"
                )),
            },
            Auth::Bearer(TokenSource::Value(token)) => Ok(request.bearer_auth(token)),
            Auth::Bearer(TokenSource::Command(command)) => {
                let mut cached = self.cached.lock().await;
                if let Some((token, at)) = cached.as_ref() {
                    if at.elapsed() < COMMAND_TOKEN_TTL {
                        return Ok(request.bearer_auth(token));
                    }
                }
                let token = run_token_command(command).await?;
                *cached = Some((token.clone(), Instant::now()));
                Ok(request.bearer_auth(token))
            }
        }
    }

    /// After a 401: forgets a cached token. True when a new one may be obtained, so that the
    /// request is worth one more try.
    pub(crate) async fn refresh(&self) -> bool {
        match &self.auth {
            Auth::Bearer(TokenSource::Command(_)) => self.cached.lock().await.take().is_some(),
            _ => false,
        }
    }
}

async fn run_token_command(command: &str) -> Result<String, String> {
    let token = crate::secrets::command_output(command, COMMAND_TIMEOUT)
        .await
        .map_err(|why| format!("the token command `{command}`: {why}"))?;
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(format!(
            "the token command `{command}` must print exactly one token; it printed {} words",
            token.split_whitespace().count()
        ));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn header(auth: Auth) -> Result<Option<String>, String> {
        let authenticator = Authenticator::new(auth);
        let request = authenticator
            .apply(reqwest::Client::new().get("http://127.0.0.1:9/x"))
            .await?
            .build()
            .expect("a valid request");
        Ok(request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().expect("ascii").to_string()))
    }

    #[tokio::test]
    async fn tokens_come_from_commands_and_basic_credentials_are_encoded() {
        assert_eq!(header(Auth::None).await, Ok(None));
        assert_eq!(
            header(Auth::Basic {
                user: "u".into(),
                password: "p".into()
            })
            .await,
            Ok(Some("Basic dTpw".into()))
        );
        assert_eq!(
            header(Auth::Bearer(TokenSource::Command(
                "echo '  tok-123 '".into()
            )))
            .await,
            Ok(Some("Bearer tok-123".into()))
        );
    }

    #[tokio::test]
    async fn bad_token_sources_say_what_is_wrong() {
        let unset = header(Auth::Bearer(TokenSource::Env(
            "SPOOL_TEST_SURELY_UNSET_VARIABLE".into(),
        )))
        .await;
        assert!(unset
            .unwrap_err()
            .contains("SPOOL_TEST_SURELY_UNSET_VARIABLE"));
        let failing = header(Auth::Bearer(TokenSource::Command(
            "echo no-login >&2; exit 3".into(),
        )))
        .await;
        let message = failing.unwrap_err();
        assert!(message.contains("no-login"), "{message}");
        let chatty = header(Auth::Bearer(TokenSource::Command("echo two words".into()))).await;
        assert!(chatty.unwrap_err().contains("2 words"));
    }

    #[test]
    fn secrets_are_not_printed() {
        let auth = Auth::Basic {
            user: "me".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        let auth = Auth::Bearer(TokenSource::Value("tok-hunter2".into()));
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
