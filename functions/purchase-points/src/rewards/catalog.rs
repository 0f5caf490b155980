//! The catalog (operators): define, list, change and deactivate rewards.

use super::*;

/// A reward as operators see it: the definition, the units claimed and what is left.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RewardView<'a> {
    #[serde(flatten)]
    reward: &'a Reward,
    claimed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stock_left: Option<u64>,
}

fn view(reward: &Reward, claimed: u64) -> RewardView<'_> {
    RewardView { reward, claimed, stock_left: reward.stock_left(claimed) }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created<'a> {
    reward_id: &'a str,
    reward: RewardView<'a>,
}

/// Defines a reward. With an `Idempotency-Key` its id is derived from the key, so a retry
/// finds it: the same definition answers the reward again, another is a 409.
pub(super) async fn create(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let body: RewardRequest = json_body(req)?;
    let key = http::idempotency_key(req)?;
    let (store, rules, now) = (&app.deps.store, &*app.deps.rules, app.deps.clock.now());
    let fingerprint = http::fingerprint(&body);
    let id = reward::new_reward_id(key.as_deref());
    let item = RewardItem::new(
        body.validate(id.clone(), rules, now).map_err(refused_reward)?,
        fingerprint.clone(),
    );
    for attempt in 0..MAX_ATTEMPTS {
        match store.transact(vec![store.new_reward_write(&item)?]).await {
            Ok(()) => {
                tracing::info!(reward_id = %id, "reward defined");
                return Ok(http::json(
                    201,
                    &Created { reward_id: &id, reward: view(&item.reward, 0) },
                ));
            }
            Err(TxFailure::Conditions(_)) => {
                // Only an Idempotency-Key retry can name an existing id.
                let existing = store.reward(&id).await?.ok_or_else(|| {
                    ApiError::Internal("a reward vanished after its id was found taken".into())
                })?;
                return match existing.fingerprint == fingerprint {
                    true => Ok(http::json(
                        201,
                        &Created {
                            reward_id: &id,
                            reward: view(&existing.reward, existing.claimed),
                        },
                    )),
                    false => Err(ApiError::conflict(
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for another reward",
                    )),
                };
            }
            Err(TxFailure::Conflict) => backoff(attempt).await,
            Err(TxFailure::Store(e)) => return Err(e.into()),
        }
    }
    Err(still_contended())
}

pub(super) async fn list(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let mut items = app.deps.store.rewards().await?;
    items.sort_by(|a, b| {
        a.reward
            .created_at
            .cmp(&b.reward.created_at)
            .then_with(|| a.reward.reward_id.cmp(&b.reward.reward_id))
    });
    let rewards: Vec<RewardView> = items.iter().map(|i| view(&i.reward, i.claimed)).collect();
    Ok(http::json(200, &serde_json::json!({ "rewards": rewards })))
}

/// Changes a reward: the next version, under the version read. A change that another
/// operator's, or the claims since, made impossible is re-decided from a fresh read.
pub(super) async fn update(app: &App, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let patch: RewardPatch = json_body(req)?;
    let id = reward_param(id)?;
    change(app, id, patch, false).await
}

/// Deactivates a reward (it stays, for its claims' sake, and can be activated again by a
/// change). Deactivating an inactive reward answers it as it is.
pub(super) async fn deactivate(
    app: &App,
    req: &Request,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    app.deps.caller(req).require_operator()?;
    let id = reward_param(id)?;
    change(app, id, RewardPatch { active: Some(false), ..Default::default() }, true).await
}

pub(super) async fn change(
    app: &App,
    id: &str,
    patch: RewardPatch,
    unless_inactive: bool,
) -> Result<Response<Body>, ApiError> {
    let (store, rules) = (&app.deps.store, &*app.deps.rules);
    for attempt in 0..MAX_ATTEMPTS {
        let now = app.deps.clock.now();
        let item = store.reward(id).await?.ok_or_else(reward_not_found)?;
        if unless_inactive && !item.reward.active {
            return Ok(http::json(200, &view(&item.reward, item.claimed)));
        }
        let next =
            item.reward.patched(patch.clone(), rules, item.claimed, now).map_err(refused_reward)?;
        match store.transact(vec![store.reward_change_write(&next, item.reward.version)?]).await {
            Ok(()) => {
                tracing::info!(reward_id = %id, version = next.version, "reward changed");
                return Ok(http::json(200, &view(&next, item.claimed)));
            }
            Err(TxFailure::Conditions(_) | TxFailure::Conflict) => backoff(attempt).await,
            Err(TxFailure::Store(e)) => return Err(e.into()),
        }
    }
    Err(still_contended())
}
