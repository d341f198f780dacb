//! The AWS SDK clients of a mount, built from `config/root`, and the helpers that read AWS
//! errors: service codes (`NoSuchEntity`) and the raw auth refusals some endpoints send
//! without a parsable code.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_sdk_iam::config::Region;
use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::date_time::{DateTime, Format};

use crate::config::RootConfig;

/// The IAM and STS clients of one configuration.
#[derive(Clone, Debug)]
pub struct Clients {
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    /// `sts_fallback_endpoints` with their regions, tried in order when `sts` is
    /// unreachable or failing on its side.
    pub sts_fallbacks: Vec<aws_sdk_sts::Client>,
}

impl Clients {
    /// The STS clients in the order to try them.
    pub fn sts_all(&self) -> impl Iterator<Item = &aws_sdk_sts::Client> {
        std::iter::once(&self.sts).chain(self.sts_fallbacks.iter())
    }
}

/// Whether another STS endpoint may succeed where this call failed: no answer at all, or a
/// server-side error. A refusal (4xx) would be the same everywhere.
pub fn worth_fallback(e: &AwsError) -> bool {
    e.status.is_none_or(|s| s >= 500)
}

/// Sends an STS input builder to each STS client in turn until one answers.
#[macro_export]
macro_rules! sts_call {
    ($clients:expr, $input:expr) => {{
        let mut result = None;
        for client in $clients.sts_all() {
            match $crate::sdk::aws($input.clone().send_with(client).await) {
                Err(e) if $crate::sdk::worth_fallback(&e) => result = Some(Err(e)),
                other => {
                    result = Some(other);
                    break;
                }
            }
        }
        result.unwrap_or_else(|| {
            Err($crate::sdk::AwsError {
                code: None,
                status: None,
                message: "no STS endpoint configured".into(),
            })
        })
    }};
}

/// The region a configuration means: its own, else the environment's, else `us-east-1`.
pub fn region_of(cfg: &RootConfig) -> String {
    if !cfg.region.is_empty() {
        return cfg.region.clone();
    }
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "us-east-1".to_string())
}

/// Builds the clients. Static keys when both are set; otherwise the SDK's default chain
/// (environment, profile, instance role). Retries are adaptive so throttling slows us down
/// instead of failing; `max_retries` -1 keeps the SDK's default attempt count.
pub async fn build(cfg: &RootConfig) -> Clients {
    build_with(cfg, &cfg.access_key, &cfg.secret_key).await
}

/// Builds clients with the given key pair instead of the configured one (rotate-root).
pub async fn build_with(cfg: &RootConfig, access_key: &str, secret_key: &str) -> Clients {
    let region = region_of(cfg);
    let retry = if cfg.max_retries < 0 {
        RetryConfig::adaptive()
    } else {
        RetryConfig::adaptive().with_max_attempts(cfg.max_retries.saturating_add(1) as u32)
    };
    // Bounded calls: a hung endpoint must fail the request (or the revocation, which is
    // then retried with backoff) rather than hold it forever.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(80))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.clone()))
        .retry_config(retry)
        .timeout_config(timeouts);
    if !access_key.is_empty() && !secret_key.is_empty() {
        loader = loader.credentials_provider(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "lessor-config-root",
        ));
    }
    let shared = loader.load().await;

    let mut iam = aws_sdk_iam::config::Builder::from(&shared).interceptor(ClockSkew);
    if !cfg.iam_endpoint.is_empty() {
        iam = iam.endpoint_url(cfg.iam_endpoint.clone());
    }
    let mut sts = aws_sdk_sts::config::Builder::from(&shared).interceptor(ClockSkew);
    if !cfg.sts_endpoint.is_empty() {
        sts = sts.endpoint_url(cfg.sts_endpoint.clone());
    }
    if !cfg.sts_region.is_empty() {
        sts = sts.region(Region::new(cfg.sts_region.clone()));
    }
    let sts_fallbacks = cfg
        .sts_fallback_endpoints
        .iter()
        .zip(cfg.sts_fallback_regions.iter())
        .map(|(endpoint, region)| {
            let b = aws_sdk_sts::config::Builder::from(&shared)
                .interceptor(ClockSkew)
                .endpoint_url(endpoint.clone())
                .region(Region::new(region.clone()));
            aws_sdk_sts::Client::from_conf(b.build())
        })
        .collect();
    Clients {
        iam: aws_sdk_iam::Client::from_conf(iam.build()),
        sts: aws_sdk_sts::Client::from_conf(sts.build()),
        sts_fallbacks,
    }
}

/// An AWS failure reduced to what callers decide on: the error code (parsed, or read from
/// the raw body when the SDK could not parse it), the HTTP status and a printable message.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub code: Option<String>,
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Codes that some endpoints send in bodies the SDK does not parse.
const RAW_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "NoSuchEntity",
    "Throttling",
];

impl AwsError {
    pub fn from_sdk<E>(e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let body = e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .map(|b| String::from_utf8_lossy(b).to_string())
            .unwrap_or_default();
        let code = e.code().map(str::to_string).or_else(|| {
            RAW_CODES
                .iter()
                .find(|c| body.contains(*c))
                .map(|c| c.to_string())
        });
        // Bodies the SDK could not parse still carry a readable <Message>.
        let raw_message = body
            .split_once("<Message>")
            .and_then(|(_, rest)| rest.split_once("</Message>"))
            .map(|(m, _)| m.to_string());
        let message = match (&code, e.message().map(str::to_string).or(raw_message)) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => match status {
                Some(s) => format!("{c} (HTTP {s})"),
                None => c.clone(),
            },
            _ => aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
        };
        AwsError {
            code,
            status,
            message,
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    pub fn no_such_entity(&self) -> bool {
        self.is("NoSuchEntity")
    }
}

impl From<AwsError> for lessor_core::Error {
    fn from(e: AwsError) -> Self {
        lessor_core::Error::bad(format!("AWS error: {}", e.message))
    }
}

/// Maps an SDK result into ours.
pub fn aws<T, E>(r: Result<T, SdkError<E, HttpResponse>>) -> Result<T, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    r.map_err(AwsError::from_sdk)
}

/// Treats `NoSuchEntity` as done: revocation steps run against users that may be gone.
pub fn gone_ok<T>(r: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.no_such_entity() => Ok(None),
        Err(e) => Err(e),
    }
}

static CLOCK_OFFSET: AtomicI64 = AtomicI64::new(0);
static LAST_SKEW_WARNING: AtomicI64 = AtomicI64::new(0);
/// Past this, signatures start failing (AWS allows 5 minutes) and expiry math drifts.
const SKEW_WARN_SECS: i64 = 30;

/// The last measured offset of AWS's clock from ours, in seconds (AWS minus local).
pub fn clock_offset_seconds() -> i64 {
    CLOCK_OFFSET.load(Ordering::Relaxed)
}

/// Reads the `Date` header of every AWS response to measure clock skew.
#[derive(Debug)]
struct ClockSkew;

impl Intercept for ClockSkew {
    fn name(&self) -> &'static str {
        "LessorClockSkew"
    }

    fn read_after_transmit(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(date) = ctx.response().headers().get("date") else {
            return Ok(());
        };
        if let Ok(remote) = DateTime::from_str(date, Format::HttpDate) {
            record_remote_time(remote.secs());
        }
        Ok(())
    }
}

/// Records the offset of a remote time from now, warning (at most once a minute) past 30 s.
pub fn record_remote_time(remote_unix: i64) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let offset = remote_unix - now;
    CLOCK_OFFSET.store(offset, Ordering::Relaxed);
    if offset.abs() > SKEW_WARN_SECS {
        let last = LAST_SKEW_WARNING.load(Ordering::Relaxed);
        if now - last >= 60
            && LAST_SKEW_WARNING
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                offset_seconds = offset,
                "the local clock differs from AWS's by more than 30 s; request signing and lease expiry may be affected"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test for the process-wide gauge, so parallel tests cannot race on it.
    #[tokio::test]
    async fn clock_offset_from_date_headers() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        record_remote_time(now + 100);
        assert!((clock_offset_seconds() - 100).abs() <= 1);
        // A real response's Date header replaces the offset (moto runs on this clock).
        let Some(moto) = crate::testmoto::start_moto() else {
            return;
        };
        let c = crate::testmoto::admin(moto.1).await;
        c.iam.list_users().send().await.unwrap();
        assert!(
            clock_offset_seconds().abs() <= 2,
            "{}",
            clock_offset_seconds()
        );
    }

    #[test]
    fn region_falls_back() {
        let cfg = RootConfig {
            region: "eu-west-1".into(),
            ..Default::default()
        };
        assert_eq!(region_of(&cfg), "eu-west-1");
    }
}
