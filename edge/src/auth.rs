//! Who is calling. On AWS, API Gateway verified the caller before the handler runs: members
//! by the JWT authorizer (`sub` = member id), operators and the order system by IAM. The
//! handlers still check that the identity fits the route, so the rule holds whatever route
//! reaches them.
//!
//! Two kinds of IAM caller are told apart by their principal ARN against two allow-lists
//! (`Principals`, from the template's `OrderSystemPrincipals` / `OperatorPrincipals`):
//! the order system owns money facts (purchases, refunds, checkout), operators own campaigns
//! and support. An IAM principal on neither list is refused by both route families once a
//! list is set. With both lists empty the handlers cannot tell the two apart, and the two
//! managed policies of the template (each allowing `execute-api:Invoke` on its routes only)
//! are the whole separation.
//!
//! A member's token may also vouch for contact details (`verified_contacts`): signup uses
//! them and refuses a body naming others.
//!
//! Locally, `scripts/dev` serves the same HTTP API through scripts/gateway.py, which verifies
//! real member tokens and SigV4 signatures and fills the same request context as API Gateway:
//! the functions run locally exactly as built for AWS (tests/tests/deploy_safety.rs).

use crate::contact::VerifiedContacts;
use crate::error::ApiError;
use crate::member::MemberId;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Member(MemberId),
    /// An operator (IAM): campaigns, coupon grants, support. Its ARN, for the audit trail.
    Operator(String),
    /// The shop's order system (IAM): purchases, refunds, checkout.
    OrderSystem(String),
    /// An IAM principal that neither allow-list names while some list is set.
    UnknownIam(String),
    /// IAM, while no allow-list is configured: accepted by both IAM route families (the
    /// managed policies are then the only separation).
    Iam(String),
    Anonymous,
}

/// The two allow-lists of IAM principals. An entry is a whole ARN, or the name of a role or
/// user: `order-system` matches `arn:aws:iam::1:role/order-system` and the sessions of that
/// role, `arn:aws:sts::1:assumed-role/order-system/<session>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    pub order_system: Vec<String>,
    pub operators: Vec<String>,
}

impl Principals {
    /// From `ORDER_SYSTEM_PRINCIPALS` and `OPERATOR_PRINCIPALS` (comma-separated; empty or
    /// unset means none).
    pub fn from_env() -> Principals {
        let list = |name: &str| {
            std::env::var(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        Principals {
            order_system: list("ORDER_SYSTEM_PRINCIPALS"),
            operators: list("OPERATOR_PRINCIPALS"),
        }
    }

    /// The kind of IAM caller `arn` is.
    pub fn classify(&self, arn: String) -> Caller {
        if self.order_system.is_empty() && self.operators.is_empty() {
            return Caller::Iam(arn);
        }
        if self.order_system.iter().any(|p| names(p, &arn)) {
            Caller::OrderSystem(arn)
        } else if self.operators.iter().any(|p| names(p, &arn)) {
            Caller::Operator(arn)
        } else {
            Caller::UnknownIam(arn)
        }
    }
}

/// Whether allow-list entry `entry` names the principal `arn`.
fn names(entry: &str, arn: &str) -> bool {
    if entry.starts_with("arn:") {
        return entry == arn;
    }
    // The resource part after the account: `role/NAME`, `user/NAME`, `assumed-role/NAME/SESSION`.
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    let mut parts = resource.split('/');
    matches!((parts.next(), parts.next()), (Some("role" | "user" | "assumed-role"), Some(name)) if name == entry)
}

/// Whether an allow-list (entries as in `Principals`) names the principal `arn`: e.g. the
/// principals that may export personal data (`PersonalDataExporters`). An empty list names
/// nobody.
pub fn named_by(list: &[String], arn: &str) -> bool {
    list.iter().any(|entry| names(entry, arn))
}

pub fn caller(req: &Request, principals: &Principals) -> Caller {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Caller::Anonymous;
    };
    let Some(auth) = ctx.authorizer.as_ref() else {
        return Caller::Anonymous;
    };
    if let Some(sub) = auth.jwt.as_ref().and_then(|j| j.claims.get("sub")) {
        return MemberId::parse(sub).map(Caller::Member).unwrap_or(Caller::Anonymous);
    }
    if let Some(iam) = auth.iam.as_ref() {
        if let Some(arn) = iam.user_arn.clone().or_else(|| iam.caller_id.clone()) {
            return principals.classify(arn);
        }
    }
    Caller::Anonymous
}

/// The contacts the member's identity token vouches for: Cognito's `email` /
/// `phone_number` claims with `email_verified` / `phone_number_verified` = `"true"` (API
/// Gateway passes every claim as a string). Empty for a request without a JWT.
pub fn verified_contacts(req: &Request) -> VerifiedContacts {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return VerifiedContacts::default();
    };
    match ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()) {
        Some(jwt) => VerifiedContacts::from_claims(|name| jwt.claims.get(name).map(String::as_str)),
        None => VerifiedContacts::default(),
    }
}

impl Caller {
    /// The member acting on their own resource `id`: anyone else is refused.
    pub fn require_member(&self, id: &MemberId) -> Result<(), ApiError> {
        match self {
            Caller::Member(me) if me == id => Ok(()),
            Caller::Member(_) => {
                Err(ApiError::Forbidden("members may only read or change their own data".into()))
            }
            Caller::Anonymous => Err(ApiError::Unauthenticated),
            _ => Err(ApiError::Forbidden("this route is for the member themself".into())),
        }
    }

    /// Operators only (campaigns, coupon grants, support).
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self {
            Caller::Operator(_) | Caller::Iam(_) => Ok(()),
            Caller::OrderSystem(_) => {
                Err(ApiError::Forbidden("the order system may not use operator routes".into()))
            }
            Caller::UnknownIam(_) => {
                Err(ApiError::Forbidden("this IAM principal is not an operator".into()))
            }
            Caller::Member(_) => {
                Err(ApiError::Forbidden("this route needs operator (IAM) authorization".into()))
            }
            Caller::Anonymous => Err(ApiError::Unauthenticated),
        }
    }

    /// The order system only: the one source of money facts (purchases, refunds, checkout).
    pub fn require_order_system(&self) -> Result<(), ApiError> {
        match self {
            Caller::OrderSystem(_) | Caller::Iam(_) => Ok(()),
            Caller::Operator(_) => Err(ApiError::Forbidden("operators may not report orders: purchases, refunds and checkouts come from the order system".into())),
            Caller::UnknownIam(_) => Err(ApiError::Forbidden("this IAM principal is not the order system".into())),
            Caller::Member(_) => Err(ApiError::Forbidden("money facts come only from the order system (IAM)".into())),
            Caller::Anonymous => Err(ApiError::Unauthenticated),
        }
    }

    /// The order system or an operator: moving a gift claim's fulfilment (the shop ships it;
    /// support may cancel it). Still no member, and no IAM principal on neither list.
    pub fn require_order_system_or_operator(&self) -> Result<(), ApiError> {
        match self {
            Caller::OrderSystem(_) | Caller::Operator(_) | Caller::Iam(_) => Ok(()),
            Caller::UnknownIam(_) => Err(ApiError::Forbidden(
                "this IAM principal is neither the order system nor an operator".into(),
            )),
            Caller::Member(_) => Err(ApiError::Forbidden(
                "fulfilment is moved by the order system or an operator (IAM)".into(),
            )),
            Caller::Anonymous => Err(ApiError::Unauthenticated),
        }
    }

    /// The IAM principal's ARN of an IAM caller (for an audit trail); None for members and
    /// anonymous callers.
    pub fn iam_principal(&self) -> Option<&str> {
        match self {
            Caller::Operator(arn)
            | Caller::OrderSystem(arn)
            | Caller::UnknownIam(arn)
            | Caller::Iam(arn) => Some(arn),
            Caller::Member(_) | Caller::Anonymous => None,
        }
    }

    pub fn member_id(&self) -> Result<&MemberId, ApiError> {
        match self {
            Caller::Member(m) => Ok(m),
            Caller::Anonymous => Err(ApiError::Unauthenticated),
            _ => Err(ApiError::Forbidden("a member identity (JWT) is required".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> Principals {
        Principals {
            order_system: vec!["order-system".into()],
            operators: vec!["loyalty-operators".into(), "arn:aws:iam::1:user/ops".into()],
        }
    }

    #[test]
    fn principals_are_classified_by_role_name_or_whole_arn() {
        let p = lists();
        assert_eq!(
            p.classify("arn:aws:sts::1:assumed-role/order-system/checkout".into()),
            Caller::OrderSystem("arn:aws:sts::1:assumed-role/order-system/checkout".into())
        );
        assert_eq!(
            p.classify("arn:aws:iam::1:role/loyalty-operators".into()),
            Caller::Operator("arn:aws:iam::1:role/loyalty-operators".into())
        );
        assert_eq!(
            p.classify("arn:aws:iam::1:user/ops".into()),
            Caller::Operator("arn:aws:iam::1:user/ops".into())
        );
        // A name is not a prefix: `order-system-test` is another role.
        assert!(matches!(
            p.classify("arn:aws:sts::1:assumed-role/order-system-test/x".into()),
            Caller::UnknownIam(_)
        ));
        assert!(matches!(p.classify("arn:aws:iam::1:user/opsx".into()), Caller::UnknownIam(_)));
        assert!(matches!(
            Principals::default().classify("arn:aws:iam::1:user/anyone".into()),
            Caller::Iam(_)
        ));
    }

    fn request_with_claims(claims: serde_json::Value) -> Request {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/members", "rawQueryString": "", "headers": {},
            "requestContext": {
                "accountId": "1", "apiId": "api", "domainName": "d", "domainPrefix": "d", "requestId": "r", "routeKey": "$default",
                "stage": "$default", "time": "27/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": { "method": "POST", "path": "/members", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t" },
                "authorizer": { "jwt": { "claims": claims, "scopes": null } }
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn verified_contacts_come_from_the_token_s_claims_and_leave_the_caller_alone() {
        let req = request_with_claims(serde_json::json!({
            "sub": "m1", "email": "Li.Wei@Example.com", "email_verified": "true", "phone_number": "+8613800138000", "phone_number_verified": "false"
        }));
        assert_eq!(
            verified_contacts(&req),
            VerifiedContacts { email: Some("li.wei@example.com".into()), phone: None }
        );
        assert_eq!(
            caller(&req, &Principals::default()),
            Caller::Member(MemberId::parse("m1").unwrap())
        );
        let plain = request_with_claims(serde_json::json!({ "sub": "m1" }));
        assert_eq!(verified_contacts(&plain), VerifiedContacts::default());
    }

    #[test]
    fn each_iam_route_family_refuses_the_other_kind() {
        let (op, os) = (Caller::Operator("a".into()), Caller::OrderSystem("b".into()));
        assert!(op.require_operator().is_ok() && os.require_order_system().is_ok());
        assert_eq!(op.require_order_system().unwrap_err().status(), 403);
        assert_eq!(os.require_operator().unwrap_err().status(), 403);
        let unknown = Caller::UnknownIam("c".into());
        assert!(unknown.require_operator().is_err() && unknown.require_order_system().is_err());
        let member = Caller::Member(MemberId::parse("m1").unwrap());
        assert_eq!(member.require_order_system().unwrap_err().status(), 403);
        // Fulfilment: both IAM kinds, neither a member nor a principal on neither list.
        assert!(
            op.require_order_system_or_operator().is_ok()
                && os.require_order_system_or_operator().is_ok()
        );
        assert_eq!(
            (
                unknown.require_order_system_or_operator().unwrap_err().status(),
                member.require_order_system_or_operator().unwrap_err().status()
            ),
            (403, 403)
        );
        assert_eq!(Caller::Anonymous.require_order_system().unwrap_err().status(), 401);
    }
}
