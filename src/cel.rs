//! CEL expressions: compiled once at config load, evaluated per request against a context of
//! request metadata and request facts.

use cel::{Context, Env, Program, Value};
use std::sync::{Arc, OnceLock};

fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

/// A compiled CEL expression and its source.
pub struct CelExpr {
    pub source: String,
    program: Program,
}

impl std::fmt::Debug for CelExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CelExpr({:?})", self.source)
    }
}

/// Why an expression could not be compiled or evaluated; the message quotes the expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CelError {
    #[error("invalid CEL expression {expression:?}: {reason}")]
    Invalid { expression: String, reason: String },
    #[error("{expression:?} evaluated to {value}, not a boolean")]
    NotBoolean { expression: String, value: String },
    #[error("{expression:?} failed: {reason}")]
    Failed { expression: String, reason: String },
}

impl CelExpr {
    /// Compiles an expression; the error quotes the expression and the parse error.
    pub fn compile(source: &str) -> Result<CelExpr, CelError> {
        env()
            .compile(source)
            .map(|program| CelExpr {
                source: source.to_string(),
                program,
            })
            .map_err(|e| CelError::Invalid {
                expression: source.to_string(),
                reason: e.to_string(),
            })
    }

    /// Identifiers the expression reads.
    pub fn variables(&self) -> Vec<String> {
        self.program
            .references()
            .variables()
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// Evaluates to a boolean against `vars`. A missing variable or a type error is an `Err`
    /// with the reason.
    pub fn eval_bool(&self, vars: &Bindings) -> Result<bool, CelError> {
        match self.program.execute(&vars.0) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(CelError::NotBoolean {
                expression: self.source.clone(),
                value: format!("{other:?}"),
            }),
            Err(e) => Err(CelError::Failed {
                expression: self.source.clone(),
                reason: e.to_string(),
            }),
        }
    }
}

/// Variables converted to CEL once and read by every expression evaluated against them (a
/// request's routes, or its guardrails for each candidate: [`Bindings::with`] adds the
/// candidate in a scope of its own). JSON integers are bound as CEL `int` (not `uint`), so
/// `x + 256` and `tier == 2` work.
pub struct Bindings<'p>(Context<'p, 'static>);

impl Bindings<'static> {
    pub fn new(vars: &[(&str, &serde_json::Value)]) -> Bindings<'static> {
        let mut ctx = Context::with_env(env().clone());
        for (name, value) in vars {
            ctx.add_variable_from_value(*name, to_cel(value));
        }
        Bindings(ctx)
    }
}

impl Bindings<'_> {
    /// These variables and `vars` (which the expressions see first).
    pub fn with<'b>(&'b self, vars: &[(&str, &serde_json::Value)]) -> Bindings<'b> {
        let mut ctx = self.0.new_inner_scope();
        for (name, value) in vars {
            ctx.add_variable_from_value(*name, to_cel(value));
        }
        Bindings(ctx)
    }
}

/// JSON → CEL, with every integer that fits as a signed `int`.
fn to_cel(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n
                .as_u64()
                .map(Value::UInt)
                .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0))),
        },
        J::String(s) => Value::String(std::sync::Arc::new(s.clone())),
        J::Array(a) => Value::from(a.iter().map(to_cel).collect::<Vec<Value>>()),
        J::Object(o) => Value::from(
            o.iter()
                .map(|(k, x)| (k.clone(), to_cel(x)))
                .collect::<std::collections::HashMap<String, Value>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_over_metadata_and_request() {
        let e = CelExpr::compile(r#"plan == "free" && request.prompt_tokens < 100"#).unwrap();
        let plan = json!("free");
        let req = json!({"prompt_tokens": 12});
        assert_eq!(
            e.eval_bool(&Bindings::new(&[("plan", &plan), ("request", &req)])),
            Ok(true)
        );
        let plan = json!("pro");
        assert_eq!(
            e.eval_bool(&Bindings::new(&[("plan", &plan), ("request", &req)])),
            Ok(false)
        );
        assert!(e
            .eval_bool(&Bindings::new(&[("request", &req)]))
            .unwrap_err()
            .to_string()
            .contains("failed"));
        let sum = CelExpr::compile("request.prompt_tokens + 256 > 260 && tier == 2").unwrap();
        let tier = json!(2);
        assert_eq!(
            sum.eval_bool(&Bindings::new(&[("request", &req), ("tier", &tier)])),
            Ok(true)
        );
        let mut vars = e.variables();
        vars.sort();
        assert_eq!(vars, vec!["plan", "request"]);
    }

    #[test]
    fn parse_errors_quote_the_expression() {
        let e = CelExpr::compile("plan == ").unwrap_err().to_string();
        assert!(e.contains("\"plan == \""), "{e}");
    }
}
