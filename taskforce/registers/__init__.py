"""The registers the reviews read: risks, milestones, reviews, the case library."""
