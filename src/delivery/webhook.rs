//! The webhook: one event per stored file, converted mp4 or refused file,
//! POSTed as JSON to `--webhook` with an `Idempotency-Key`, signed with
//! HMAC-SHA256 when `--webhook-secret` is set. Done only when the URL itself
//! answers 2xx: a redirect is not followed (the event would go elsewhere).

use anyhow::{anyhow, Result};

use super::{Inner, Outcome};

impl Inner {
    /// Posts one event; `Done` on a 2xx from the URL itself.
    pub(super) fn post_event(&self, id: &str, body: &serde_json::Value) -> Result<Outcome> {
        let url = self
            .cfg
            .webhook
            .as_ref()
            .ok_or_else(|| anyhow!("an event, but no --webhook: kept for a start with it"))?;
        let bytes = serde_json::to_vec(body)?;
        let mut req = self
            .http
            .post(url)
            .set("Content-Type", "application/json")
            .set("Idempotency-Key", id)
            .set("X-Dashcam-Event", body["event"].as_str().unwrap_or("event"));
        if let Some(secret) = &self.cfg.webhook_secret {
            let sig = crate::delivery::sigv4::hmac_hex(secret.as_bytes(), &bytes);
            req = req.set("X-Dashcam-Signature", &format!("sha256={sig}"));
        }
        match req.send_bytes(&bytes) {
            Ok(r) if (200..300).contains(&r.status()) => {
                log::debug!("webhook: {id} delivered");
                Ok(Outcome::Done)
            }
            Ok(r) => {
                let code = r.status();
                let to = r
                    .header("Location")
                    .unwrap_or("no Location given")
                    .to_string();
                Err(
                    anyhow::Error::new(crate::delivery::s3::StatusError(code)).context(format!(
                        "the webhook answered HTTP {code} (a redirect, to {to}): events are \
                     delivered only to the URL itself, redirects are not followed; fix --webhook"
                    )),
                )
            }
            Err(ureq::Error::Status(code, _)) => {
                Err(anyhow::Error::new(crate::delivery::s3::StatusError(code))
                    .context(format!("the receiver answered HTTP {code}")))
            }
            Err(e) => Err(anyhow!("{e}")),
        }
    }
}
