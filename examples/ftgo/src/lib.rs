//! # ftgo — the FTGO food-delivery example of *Microservices Patterns*, built on annals
//!
//! Chapter 6 of the book stores FTGO's aggregates as events. This crate holds the domain code:
//! the [`order::Order`] aggregate of the Order Service and its [`order_history`] read model
//! (a projection, on SQLite or PostgreSQL); the [`consumer`], [`kitchen`] and [`accounting`]
//! services' aggregates; the [`create_order`] saga with the services as its participants
//! ([`services`]); a [`choreography`] (cancelling an order, with no orchestrator); and the
//! whole system in one process ([`in_process`]), or one service per
//! process talking through NATS JetStream ([`over_nats`]).

pub mod accounting;
pub mod choreography;
pub mod consumer;
pub mod create_order;
pub mod in_process;
pub mod kitchen;
pub mod order;
pub mod order_history;
pub mod over_nats;
pub mod privacy;
pub mod services;
