//! # ftgo — the FTGO food-delivery example of *Microservices Patterns*, built on annals
//!
//! Chapter 6 of the book stores FTGO's aggregates as events. This crate holds the domain code:
//! the [`order::Order`] aggregate of the Order Service and its [`order_history`] read model
//! (a projection, on SQLite or PostgreSQL); the consumer, kitchen and
//! accounting services and the Create Order saga come with the saga layer.

pub mod order;
pub mod order_history;
