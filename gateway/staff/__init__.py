"""Who is at the till: the mall's staff list, cashiers signed in, supervisors' approvals, shifts and their reports."""
