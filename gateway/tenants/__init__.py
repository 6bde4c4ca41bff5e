"""Tenants: who is calling (static, virtual and admin keys), what each key may use,
its limits, spend and budgets. Facades put a `Caller` in the request scope; services
check it before they act."""
