//! Typed access to positional parameters with JSON-RPC errors.

use super::RpcError;
use lode_core::{Address, Hash256};
use serde_json::Value;

/// Positional parameters of one call.
pub struct Params {
    values: Vec<Value>,
}

impl Params {
    /// Wraps the raw array, refusing more than `max`.
    pub fn new(values: Vec<Value>, max: usize) -> Result<Params, RpcError> {
        if values.len() > max {
            return Err(RpcError::invalid_params(format!("expected at most {max} parameters, got {}", values.len())));
        }
        Ok(Params { values })
    }

    fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i).filter(|v| !v.is_null())
    }

    fn required(&self, i: usize, name: &str) -> Result<&Value, RpcError> {
        self.get(i).ok_or_else(|| RpcError::invalid_params(format!("missing parameter {} ({name})", i + 1)))
    }

    /// A required hash.
    pub fn hash(&self, i: usize, name: &str) -> Result<Hash256, RpcError> {
        let v = self.required(i, name)?;
        let s = v.as_str().ok_or_else(|| RpcError::invalid_params(format!("{name} must be a hex string")))?;
        Hash256::from_hex(s).map_err(|e| RpcError::invalid_params(format!("{name}: {e}")))
    }

    /// A required unsigned integer.
    pub fn u64(&self, i: usize, name: &str) -> Result<u64, RpcError> {
        self.required(i, name)?
            .as_u64()
            .ok_or_else(|| RpcError::invalid_params(format!("{name} must be a non-negative integer")))
    }

    /// An optional boolean.
    pub fn bool_or(&self, i: usize, name: &str, default: bool) -> Result<bool, RpcError> {
        match self.get(i) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) => Ok(n.as_u64().unwrap_or(0) != 0),
            Some(_) => Err(RpcError::invalid_params(format!("{name} must be a boolean"))),
        }
    }

    /// A required string.
    pub fn str(&self, i: usize, name: &str) -> Result<&str, RpcError> {
        self.required(i, name)?.as_str().ok_or_else(|| RpcError::invalid_params(format!("{name} must be a string")))
    }

    /// A required array.
    pub fn array(&self, i: usize, name: &str) -> Result<&[Value], RpcError> {
        self.required(i, name)?
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| RpcError::invalid_params(format!("{name} must be an array")))
    }

    /// A required address of this network.
    pub fn address(&self, i: usize, prefix: &str) -> Result<Address, RpcError> {
        let s = self.str(i, "address")?;
        Address::decode(s, prefix).map_err(|e| RpcError::invalid_params(e.to_string()))
    }
}
