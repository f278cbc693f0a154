//! Debounce → compile → publish.
