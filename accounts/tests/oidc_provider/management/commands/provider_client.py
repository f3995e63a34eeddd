from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from oauth2_provider.models import get_application_model


class Command(BaseCommand):
    help = "Register the site under test as a confidential client of the test provider."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("client_id")
        parser.add_argument("--secret", required=True)
        parser.add_argument("--redirect-uri", required=True)
        parser.add_argument("--logout-uri", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        application = get_application_model()
        application.objects.filter(client_id=options["client_id"]).delete()
        application.objects.create(
            name="Hobbies Community",
            client_id=options["client_id"],
            client_secret=options["secret"],
            client_type=application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=options["redirect_uri"],
            post_logout_redirect_uris=options["logout_uri"],
            algorithm=application.RS256_ALGORITHM,
            skip_authorization=False,
        )
