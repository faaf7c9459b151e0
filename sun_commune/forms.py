from django.contrib.auth.forms import PasswordResetForm

from . import tasks


class QueuedPasswordResetForm(PasswordResetForm):
    """Sends the reset mail from Celery. The task gets the user's id and makes
    the link itself, so the token never sits in the queue."""

    def save(self, **kwargs):
        for user in self.get_users(self.cleaned_data["email"]):
            tasks.send_password_reset.delay(user_id=user.pk)
