//! From the shared connection options to a connected client: the configuration file, the
//! broker URL (`--url`, or `-h`/`-p` the mosquitto way), TLS, will, and connecting.

use std::path::Path;

use futures_util::{FutureExt as _, StreamExt as _};
use sansmqtt_tokio::{
    Authenticator, ClientConfig, ClientError, ConnAck, ConnectionEvent, MqttClient,
    ProtocolVersion, Proxy, Scram, Target, WillConfig,
};

use crate::args::ConnArgs;
use crate::error::{CliError, ConfigFormatError, Stage};

/// The SCRAM authenticator `--auth-method` names, with the configured user name and password,
/// which it takes out of the configuration: CONNECT then carries neither, so the password
/// never leaves the process.
fn scram_authenticator(
    method: &str,
    config: &mut ClientConfig,
) -> Result<std::sync::Arc<dyn Authenticator>, CliError> {
    if config.protocol_version != ProtocolVersion::V5 {
        return Err(CliError::NeedsV5 {
            option: "--auth-method",
        });
    }
    let (Some(user), Some(password)) = (config.username.take(), config.password.take()) else {
        return Err(CliError::BadAuthMethod(method.to_owned()));
    };
    // A password from the command line or a document is text.
    let Some(password) = password.expose_str() else {
        return Err(CliError::BadAuthMethod(method.to_owned()));
    };
    Scram::by_name(method, user, password)
        .map(|scram| std::sync::Arc::new(scram) as std::sync::Arc<dyn Authenticator>)
        .ok_or_else(|| CliError::BadAuthMethod(method.to_owned()))
}

/// Where and how to connect, resolved from the options and the configuration file.
#[derive(Clone)]
pub(crate) struct Connection {
    /// The client configuration (file, then options on top).
    pub(crate) config: ClientConfig,
    /// The broker URL.
    pub(crate) url: String,
    /// The URL without its password, for messages.
    pub(crate) display_url: String,
    /// Extra WebSocket handshake headers.
    pub(crate) headers: Vec<(String, String)>,
}

/// Shows the URL without its password and the headers by name only (they often carry a
/// token).
impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("config", &self.config)
            .field("url", &self.display_url)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Resolves the options. Without `--config` the client does not reconnect on its own: a
    /// command-line tool reports a lost connection and lets the caller decide.
    pub(crate) fn from_args(args: &ConnArgs) -> Result<Self, CliError> {
        let mut config = match &args.config {
            Some(path) => load_config(path)?,
            None => ClientConfig::default().auto_reconnect(false),
        };
        if let Some(version) = args.protocol_version {
            config.protocol_version = version;
        }
        if let Some(secs) = args.keep_alive {
            config.keep_alive = std::time::Duration::from_secs(secs.into());
        }
        if let Some(timeout) = args.connect_timeout {
            config.connect_timeout = timeout;
        }
        if let Some(user) = &args.username {
            config.username = Some(user.clone());
        }
        if let Some(password) = &args.password {
            config.password = Some(password.into());
        }
        if let Some(proxy) = &args.proxy {
            config.proxy = Some(Proxy::parse(proxy).map_err(CliError::BadProxy)?);
        }
        if args.proxy_from_env {
            config.proxy_from_env = true;
        }
        if let Some(method) = &args.auth_method {
            config.authenticator = Some(scram_authenticator(method, &mut config)?);
        }
        if args.persistent {
            config.clean_session = false;
        } else if args.clean_session {
            config.clean_session = true;
        }
        if let Some(expiry) = args.session_expiry {
            if config.protocol_version != ProtocolVersion::V5 {
                return Err(CliError::NeedsV5 {
                    option: "--session-expiry",
                });
            }
            config.session_expiry_interval = Some(std::time::Duration::from_secs(expiry.into()));
        }
        if let Some(file) = &args.cafile {
            config.ca_file = Some(file.clone());
        }
        if let Some(dir) = &args.capath {
            config.ca_path = Some(dir.clone());
        }
        if let Some(pem) = &args.ca_data {
            config.ca_data = Some(pem.clone());
        }
        if let Some(cert) = &args.cert {
            config.cert_file = Some(cert.clone());
        }
        if let Some(key) = &args.key {
            config.key_file = Some(key.clone());
        }
        if args.insecure {
            config.check_hostname = false;
        }
        if let Some(topic) = &args.will_topic {
            sansmqtt_tokio::proto::topic::validate_topic_name(topic).map_err(|source| {
                CliError::InvalidTopic {
                    topic: topic.clone(),
                    source,
                }
            })?;
            config.will = Some(WillConfig {
                topic: topic.clone(),
                message: args.will_payload.clone().unwrap_or_default().into_bytes(),
                qos: args.will_qos.unwrap_or_default(),
                retain: args.will_retain,
            });
        }
        let tls_asked = args.cafile.is_some()
            || args.capath.is_some()
            || args.ca_data.is_some()
            || args.cert.is_some();
        let url = match (&args.url, &args.host, args.port) {
            (Some(url), _, _) => url.clone(),
            (None, None, None) if config.uri.is_some() => config.uri.clone().unwrap_or_default(),
            (None, host, port) => {
                let scheme = if tls_asked { "mqtts" } else { "mqtt" };
                let host = host.as_deref().unwrap_or("localhost");
                let port = port.unwrap_or(if tls_asked { 8883 } else { 1883 });
                // An IPv6 address needs brackets in a URL.
                if host.contains(':') && !host.starts_with('[') {
                    format!("{scheme}://[{host}]:{port}")
                } else {
                    format!("{scheme}://{host}:{port}")
                }
            }
        };
        let target = Target::parse(&url).map_err(|source| CliError::BadUrl {
            url: redact(&url),
            source,
        })?;
        Ok(Self {
            config,
            url,
            // `Target` shows itself without the password.
            display_url: target.to_string(),
            headers: args.headers.clone(),
        })
    }

    /// A client with this configuration.
    pub(crate) fn client(&self, client_id: Option<&str>) -> MqttClient {
        MqttClient::new(client_id, self.config.clone())
    }

    /// Connects `client`; the error says where it tried to connect.
    pub(crate) async fn connect(&self, client: &MqttClient) -> Result<ConnAck, CliError> {
        let mut connecting = client.connect(self.url.as_str());
        for (name, value) in &self.headers {
            connecting = connecting.header(name.as_str(), value.as_str());
        }
        connecting.await.map_err(|err| self.connect_error(err))
    }

    /// A connect failure, with the URL.
    pub(crate) fn connect_error(&self, err: ClientError) -> CliError {
        CliError::client(
            format!("connecting to {}", self.display_url),
            Stage::Connect,
            err,
        )
    }
}

/// A URL for an error message: anything between `://` and `@` is hidden.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => format!("{}***{}", &url[..start + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// Loads a `ClientConfig` document, its format chosen by the file extension.
pub(crate) fn load_config(path: &Path) -> Result<ClientConfig, CliError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let parse: fn(&str) -> Result<ClientConfig, ConfigFormatError> = match extension.as_deref() {
        Some("yaml" | "yml") => |text| Ok(serde_yaml_ng::from_str(text)?),
        Some("json") => |text| Ok(serde_json::from_str(text)?),
        Some("toml") => |text| Ok(toml::from_str(text)?),
        _ => {
            return Err(CliError::ConfigExtension {
                path: path.to_owned(),
            });
        }
    };
    let text = std::fs::read_to_string(path).map_err(|source| CliError::ConfigRead {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|source| CliError::ConfigParse {
        path: path.to_owned(),
        source,
    })
}

/// Why the connection went away, from the events seen so far: a `NotConnected` from the client
/// says less than the `ConnectionLost` event before it.
pub(crate) fn lost_cause(
    events: &mut (impl futures_util::Stream<Item = ConnectionEvent> + Unpin),
    fallback: ClientError,
) -> ClientError {
    let mut cause = fallback;
    while let Some(Some(event)) = events.next().now_or_never() {
        if let ConnectionEvent::ConnectionLost(err) = event {
            cause = err;
        }
    }
    cause
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn conn(args: &[&str]) -> Result<Connection, CliError> {
        let mut argv = vec!["sansmqtt", "sub", "-t", "x"];
        argv.extend_from_slice(args);
        let cli = crate::args::Cli::try_parse_from(argv).expect("parses");
        let crate::args::Command::Sub(sub) = cli.command else {
            panic!("sub")
        };
        Connection::from_args(&sub.conn)
    }

    #[test]
    fn host_and_port_make_a_url_and_tls_options_switch_to_mqtts() {
        let plain = conn(&["-h", "broker", "-p", "1884"]).expect("valid");
        assert_eq!(plain.url, "mqtt://broker:1884");
        let tls = conn(&["-h", "broker", "--cafile", "ca.pem"]).expect("valid");
        assert_eq!(tls.url, "mqtts://broker:8883");
        let v6 = conn(&["-h", "::1"]).expect("valid");
        assert_eq!(v6.url, "mqtt://[::1]:1883");
        assert_eq!(conn(&[]).expect("valid").url, "mqtt://localhost:1883");
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        let c = conn(&["-L", "mqtt://me:secret@broker:1883"]).expect("valid");
        assert!(!c.display_url.contains("secret"), "{}", c.display_url);
        let err = conn(&["-L", "http://me:secret@broker"]).expect_err("bad scheme");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert_eq!(err.exit_code(), crate::error::exit::USAGE);
    }

    #[test]
    fn config_files_load_by_extension() {
        let dir = std::env::temp_dir().join(format!("mqtt-cli-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cases = [
            ("c.yaml", "keep_alive: 42\nuri: mqtt://example:1999\n"),
            (
                "c.json",
                r#"{"keep_alive": 42, "uri": "mqtt://example:1999"}"#,
            ),
            ("c.toml", "keep_alive = 42\nuri = \"mqtt://example:1999\"\n"),
        ];
        for (name, text) in cases {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            let config = load_config(&path).expect(name);
            assert_eq!(
                config.keep_alive,
                std::time::Duration::from_secs(42),
                "{name}"
            );
            assert_eq!(config.uri.as_deref(), Some("mqtt://example:1999"), "{name}");
        }
        let bad = dir.join("c.ini");
        std::fs::write(&bad, "x").expect("write");
        assert!(matches!(
            load_config(&bad),
            Err(CliError::ConfigExtension { .. })
        ));
        let broken = dir.join("broken.json");
        std::fs::write(&broken, "{").expect("write");
        assert!(matches!(
            load_config(&broken),
            Err(CliError::ConfigParse { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
