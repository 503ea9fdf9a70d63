//! Compiled forms of a function version — its input validator and sandboxed prompt template — cached so a trigger
//! does not recompile them. Compiling runs on a thread of its own with a large stack and rendering on the blocking
//! pool, a few renders at a time: neither holds up the thread that asked.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use dashboard_core::{CoreError, Function, FunctionId, InputValidator};
use serde_json::Value;
use tokio::sync::{Semaphore, oneshot};

use crate::prompt::PromptTemplate;

/// How many compiled function versions are kept before the cache starts over.
const MAX_CACHED: usize = 1024;
/// The stack of the thread that compiles a function: tera's parser recurses once per level of a template, and the
/// sandbox's depth limits keep that far below this.
const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Renders running at once, all functions together: as many as the machine has cores, so that triggers of prompts
/// that run up to the time limit cannot take every thread.
static RENDERS: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
});

/// A function version ready to check inputs and render prompts.
pub(crate) struct CompiledFunction {
    validator: InputValidator,
    prompt: Option<Arc<PromptTemplate>>,
}

impl CompiledFunction {
    /// Compiles the schema and the prompt template; errors name `input_schema` or `prompt`.
    pub(crate) fn compile(function: &Function) -> Result<Self, CoreError> {
        let validator = InputValidator::new(&function.input_schema)?;
        let prompt = function.prompt.as_deref().map(PromptTemplate::compile).transpose()?.map(Arc::new);
        Ok(Self { validator, prompt })
    }

    /// Checks `input` against the schema and renders the prompt with it (`{{ input.field }}`), on a blocking thread:
    /// a render may take up to the sandbox's time limit, and must not hold up the thread that called.
    pub(crate) async fn prepare(&self, input: &Value) -> Result<Option<String>, CoreError> {
        self.validator.validate(input)?;
        let Some(prompt) = &self.prompt else { return Ok(None) };
        let (prompt, input) = (prompt.clone(), input.clone());
        let _permit = RENDERS.acquire().await.expect("the render semaphore is never closed");
        let rendered =
            tokio::task::spawn_blocking(move || prompt.render(&input)).await.unwrap_or_else(|_| {
                Err("the prompt template could not be rendered: its render stopped".to_owned())
            });
        rendered.map(Some).map_err(|message| CoreError::InputRejected { path: String::new(), message })
    }
}

/// Compiled function versions by (id, version).
#[derive(Default)]
pub(crate) struct CompiledCache {
    entries: Mutex<HashMap<(FunctionId, u32), Arc<CompiledFunction>>>,
}

impl CompiledCache {
    /// The compiled form of `function`, compiled now unless it is cached.
    pub(crate) async fn get(&self, function: &Function) -> Result<Arc<CompiledFunction>, CoreError> {
        let key = (function.id, function.version);
        if let Some(compiled) = self.entries.lock().expect("cache lock poisoned").get(&key) {
            return Ok(compiled.clone());
        }
        let compiled = Arc::new(compile_on_own_thread(function.clone()).await?);
        let mut entries = self.entries.lock().expect("cache lock poisoned");
        if entries.len() >= MAX_CACHED {
            entries.clear();
        }
        entries.insert(key, compiled.clone());
        Ok(compiled)
    }
}

/// Compiles `function` on a new thread with a [`COMPILE_STACK_BYTES`] stack and waits for it.
async fn compile_on_own_thread(function: Function) -> Result<CompiledFunction, CoreError> {
    let failed = |reason: &str| {
        CoreError::invalid_field("prompt", format!("the template could not be compiled: {reason}"))
    };
    let (sender, receiver) = oneshot::channel();
    std::thread::Builder::new()
        .name("compile function".to_owned())
        .stack_size(COMPILE_STACK_BYTES)
        .spawn(move || {
            let _ = sender.send(CompiledFunction::compile(&function));
        })
        .map_err(|error| failed(&error.to_string()))?;
    // A compile that panicked dropped its sender.
    receiver.await.unwrap_or_else(|_| Err(failed("the compiler stopped")))
}

#[cfg(test)]
mod tests {
    use dashboard_core::FunctionSpec;
    use serde_json::json;

    use super::*;

    fn function(prompt: &str) -> Function {
        let mut spec = FunctionSpec::new("f", "demo");
        spec.prompt = Some(prompt.into());
        Function::create(spec).expect("valid spec")
    }

    #[tokio::test]
    async fn prompt_is_rendered_from_the_input_without_escaping() {
        let compiled = CompiledFunction::compile(&function("Fix {{ input.url }} <now>")).expect("compiles");
        let prompt = compiled.prepare(&json!({"url": "a&b"})).await.expect("renders");
        assert_eq!(prompt.as_deref(), Some("Fix a&b <now>"));
    }

    #[tokio::test]
    async fn a_missing_field_names_it() {
        let compiled = CompiledFunction::compile(&function("Fix {{ input.url }}")).expect("compiles");
        let error = compiled.prepare(&json!({})).await.expect_err("rendered without the field");
        assert!(error.to_string().contains("input.url"), "{error}");
    }

    #[test]
    fn a_broken_template_names_the_prompt_field() {
        let error = CompiledFunction::compile(&function("Fix {{ input.url "))
            .err()
            .expect("broken template compiled");
        assert!(matches!(error, CoreError::InvalidField { ref field, .. } if field == "prompt"), "{error}");
    }
}
