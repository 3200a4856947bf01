"""Template tag libraries of ``sitewarden.contrib.django``."""
