//! `Value`: the type-erased result a generator is resumed with.

use std::any::Any;
use std::fmt;

use crate::error::{Error, ErrorKind};

/// A type-erased value: what a yield point hands back to its generator.
///
/// The generator knows what it yielded, so it knows what to ask for;
/// [`downcast`](Value::downcast) to anything else is a clear error naming
/// both types, never a panic.
///
/// ```
/// use squall::gen::Value;
/// use squall::ErrorKind;
///
/// let v = Value::new(42u32);
/// assert_eq!(v.type_name(), "u32");
/// let err = Value::new(42u32).downcast::<String>().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TypeMismatch);
/// assert!(err.message().contains("u32") && err.message().contains("String"));
/// assert_eq!(v.downcast::<u32>()?, 42);
/// // A Value is never wrapped twice.
/// assert_eq!(Value::new(Value::new(7u8)).downcast::<u8>()?, 7);
/// # Ok::<(), squall::Error>(())
/// ```
pub struct Value {
    inner: Box<dyn Any>,
    type_name: &'static str,
}

impl Value {
    /// Wraps `value`.
    ///
    /// A `Value` is not wrapped again but returned as it is, so a point whose
    /// result is already a `Value` (a `Future<Value>`, a callback called with
    /// one) resumes the generator with the value inside, not a `Value` of a
    /// `Value`.
    pub fn new<T: 'static>(value: T) -> Value {
        let mut slot = Some(value);
        if let Some(value) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Value>>() {
            return value.take().expect("set just above");
        }
        Value {
            inner: Box::new(slot.take().expect("set just above")),
            type_name: std::any::type_name::<T>(),
        }
    }

    /// `()`: what a callback called with no arguments delivers (Python's `None`).
    pub fn unit() -> Value {
        Value::new(())
    }

    /// The name of the wrapped type.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Whether the wrapped value is a `T`.
    pub fn is<T: 'static>(&self) -> bool {
        self.inner.is::<T>()
    }

    /// A reference to the value, if it is a `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.inner.downcast_ref()
    }

    /// The value as a `T`.
    ///
    /// # Errors
    /// [`ErrorKind::TypeMismatch`], naming the type held and the type asked for.
    pub fn downcast<T: 'static>(self) -> Result<T, Error> {
        let held = self.type_name;
        self.inner.downcast::<T>().map(|b| *b).map_err(|_| {
            Error::new(
                ErrorKind::TypeMismatch,
                format!(
                    "value is a `{held}`, not a `{}`",
                    std::any::type_name::<T>()
                ),
            )
        })
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value<{}>", self.type_name)
    }
}
